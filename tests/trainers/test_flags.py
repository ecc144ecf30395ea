"""Bad flags and data stop the CLI with one clear message, a non-zero exit, no traceback."""

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tests.trainers.conftest import GLYPHS, REPO, RUN, Cli, checkpoint_tensors

FLAGS = flags.FLAGS


@pytest.mark.parametrize("args, message", [
    (["--n_way=1001"], "--n_way=1001 is more than the 1000 classes of glyphs train"),
    (["--k_shot=10", "--k_query=11"], "--k_shot + --k_query = 10 + 11 = 21 images per class, "
                                      "but only 0 classes of glyphs train"),
    (["--val_split=tset"], "--val_split=tset"),
    (["--dataset=miniimagenet"], "--data_dir=None: miniimagenet needs data_dir"),
    (["--dataset=miniimagenet", "--data_dir=/no/such/folder"],
     "--data_dir=/no/such/folder: data_dir /no/such/folder does not exist"),
    (["--strategy=multi_worker"], "needs the TF_CONFIG environment variable"),
    (["--image_size=12"], "--image_size=12 is too small for conv4"),
    (["--pooling=avg", "--resolutions=20"],
     "--resolutions=20 must lie between 16 px and the 16 px images"),
    (["--k_shot=5", "--eval_k_query=16"], "--k_shot + --eval_k_query = 5 + 16 = 21 images per "
                                          "class, but only 0 classes of glyphs val"),
    (["--learner=protonet", "--recompute"], "--recompute applies to the gradient-based "
                                            "learners (ProtoNet has no inner loop)"),
    (["--max_train_classes=1001"], "--train_split=train --max_train_classes=1001: Cannot keep "
                                   "1001 source classes of glyphs train: it has 1000"),
])
def test_bad_flags_and_data_exit_before_any_work(run_main, args, message):
    code, stderr, model_dir = run_main(*GLYPHS, *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert not model_dir.exists()  # nothing was written


def test_tfds_dataset_not_prepared_in_data_dir_is_one_message(run_main, tmp_path):
    code, stderr, model_dir = run_main(*GLYPHS, "--dataset=tfds:omniglot",
                                       f"--data_dir={tmp_path}")
    assert code == 2 and "Traceback" not in stderr
    assert f"is not prepared in data_dir {tmp_path}" in stderr
    assert "tfds build omniglot" in stderr and not model_dir.exists()


def test_eval_without_a_trained_run_is_refused(run_main):
    code, stderr, _ = run_main(*GLYPHS, "--mode=eval")
    assert code == 2 and "holds no checkpoint" in stderr


def test_resuming_with_other_model_flags_is_refused(run_main, reference_run):
    before = sorted(path.name for path in reference_run.iterdir())
    code, stderr, _ = run_main(f"--flagfile={reference_run / 'flags.cfg'}", "--n_way=4",
                               "--outer_lr=0.01", model_dir=reference_run)
    assert code == 2
    assert "--n_way=3 there, --n_way=4 now" in stderr
    assert "outer_lr" not in stderr  # learning rates may change on resume
    assert sorted(path.name for path in reference_run.iterdir()) == before


@pytest.mark.parametrize("args, message", [
    (["--keep_min=1.5"], "--keep_min must be a keep ratio in (0, 1]"),
    (["--keep_min=0.9", "--keep_max=0.8"], "--keep_min must not exceed --keep_max"),
    (["--resolutions=12", "--learner=maml"], "--resolutions=12 with a flatten head"),
    (["--backbone=conv4", "--filters=4,8"], "--filters takes one value for conv4"),
    (["--mgaug=dropout"], "--mgaug"),
    (["--dataset=imagenet"], "--dataset=imagenet: Unknown dataset 'imagenet'"),
    (["--dataset=tfds:imagenet"], "available: tfds:omniglot"),
    (["--vectorize"], "--vectorize was removed (issue 13): the vectorized path"),
])
def test_flag_parsing_errors_name_the_flag(args, message):
    with pytest.raises(flags.Error, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        FLAGS(["run.py", "--model_dir=unused", *args])
    FLAGS.unparse_flags()


def test_cli_reports_errors_without_traceback_and_exits(tmp_path):
    """Through `python trainers/run.py`: absl's parse errors, replica checks, divergence.

    The processes must also end: a failed run still holds tf.data iterators
    whose Python-function threads could hang the interpreter's exit.
    """
    runs = {
        "keep": (["--keep_min=0"], 1, "--keep_min must be a keep ratio in (0, 1]"),
        "replicas": (["--strategy=mirrored", "--cpu_devices=2", "--meta_batch_size=3"], 2,
                     "--meta_batch_size=3 is not divisible by the 2 replicas"),
        "removed": (["--vectorize"], 1, "flag --vectorize=True: --vectorize was removed "
                                        "(issue 13)"),
        "diverging": (["--learner=protonet", "--outer_optimizer=sgd", "--outer_lr=1e38",
                       "--train_steps=3", "--checkpoint_every=1"], 3, "training stopped"),
    }
    started = {name: Cli(RUN, GLYPHS + args + [f"--model_dir={tmp_path / name}"], tmp_path,
                         name) for name, (args, _, _) in runs.items()}
    try:
        for name, (_, code, message) in runs.items():
            assert started[name].wait(timeout=120) == code, started[name].stderr
            assert message in started[name].stderr
            assert "Traceback" not in started[name].stderr
    finally:
        for cli in started.values():
            cli.kill()
    assert not any((tmp_path / name).exists() for name in ("keep", "replicas", "removed"))
    # Divergence: the latest checkpoint is named as intact and holds finite values only.
    latest = tf.train.latest_checkpoint(str(tmp_path / "diverging"))
    if latest is None:
        assert "No checkpoint had been written" in started["diverging"].stderr
    else:
        assert f"{latest}, is intact" in started["diverging"].stderr
        for name, value in checkpoint_tensors(latest).items():
            assert np.isfinite(value.astype(np.float64)).all(), name


def test_every_config_parses(monkeypatch):
    monkeypatch.chdir(REPO)  # nested --flagfile paths are relative to the repository
    configs = sorted((REPO / "configs").glob("*.cfg"))
    assert {"tiered.cfg", "demo.cfg", "mini_maml.cfg", "omniglot_fomaml_mgaug.cfg",
            "cub_protonet.cfg", "cifar_fs_maml_mgaug.cfg"} <= {path.name for path in configs}
    for path in configs:
        FLAGS(["run.py", "--model_dir=unset", f"--flagfile={path}"])
        try:
            if path.name.endswith("_mgaug.cfg") or path.name == "tiered.cfg":
                assert FLAGS.mgaug == "catfish", path
            if path.name != "mgaug_catfish.cfg":  # an include, not a run
                assert FLAGS.model_dir == f"runs/{path.stem}", path
        finally:
            FLAGS.unparse_flags()


def test_learning_rate_decay_and_eval_k_query_reach_the_run(tmp_path):
    import json  # pylint: disable=import-outside-toplevel

    from trainers import report, run  # pylint: disable=import-outside-toplevel

    model_dir = tmp_path / "model"
    FLAGS(["run.py", f"--model_dir={model_dir}", *GLYPHS, "--train_steps=4", "--summary_every=1",
           "--eval_every=4", "--val_episodes=2", "--eval_episodes=3", "--checkpoint_every=4",
           "--outer_lr=0.01", "--outer_lr_decay_steps=2", "--outer_lr_decay_rate=0.5",
           "--eval_k_query=3", "--mode=train_and_eval"])
    try:
        run.main(["run.py"])
    finally:
        FLAGS.unparse_flags()
    scalars = report.read_scalars(str(model_dir / "train"))
    rates = dict(scalars["learning_rate/outer"])
    # A run without MGAug logs its meta-gradient norm too (compared with MGAug runs').
    assert [step for step, _ in scalars["meta_gradient_norm/full"]] == [1, 2, 3, 4]
    assert all(value > 0 for _, value in scalars["meta_gradient_norm/full"])
    # Logged after each step's update: staircase halving every 2 optimizer steps.
    np.testing.assert_allclose([rates[step] for step in (1, 2, 3, 4)],
                               [0.01, 0.005, 0.005, 0.0025], rtol=1e-6)
    evaluation = json.loads((model_dir / "eval_test.json").read_text())
    assert evaluation["k_query"] == 3 and evaluation["config"]["k_query"] == 2


def test_max_train_classes_limits_only_the_training_split_and_is_recorded():
    from trainers import flags as run_flags  # pylint: disable=import-outside-toplevel
    from trainers import run  # pylint: disable=import-outside-toplevel
    FLAGS(["run.py", *GLYPHS, "--max_train_classes=7", "--train_classes_seed=4"])
    try:
        train, val = run._load_split("train_split"), run._load_split("val_split")
        text = run_flags.flagfile_text(FLAGS)
    finally:
        FLAGS.unparse_flags()
    assert train.num_classes == 7 and val.num_classes == 200
    assert train.class_names == run.data.load("glyphs", split="train", image_size=16
                                              ).sample_source_classes(7, 4).class_names
    assert "--max_train_classes=7" in text and "--train_classes_seed=4" in text
    assert {"max_train_classes", "train_classes_seed"} <= set(run_flags.MODEL_FLAGS)


def test_removed_vectorize_flag_old_flags_cfg_still_parses_and_new_files_omit_it(tmp_path):
    """Runs from before issue 13 list `--novectorize` in their flags.cfg: it still reruns them."""
    from trainers import flags as run_flags  # pylint: disable=import-outside-toplevel
    old = tmp_path / "flags.cfg"
    old.write_text("# Resolved flags of this run\n--learner=fomaml\n--novectorize\n--recompute\n")
    FLAGS(["run.py", "--model_dir=unused", *run_flags.expand_flagfiles([f"--flagfile={old}"])])
    try:
        assert FLAGS.learner == "fomaml" and FLAGS.recompute and FLAGS.vectorize is False
        text = run_flags.flagfile_text(FLAGS)
        names = set(run_flags.flag_dict(FLAGS))
        help_text = run_flags.help_text(FLAGS)
    finally:
        FLAGS.unparse_flags()
    assert "--recompute" in text and "recompute" in names and "--[no]recompute" in help_text
    assert "vectorize" not in text and "vectorize" not in names and "vectorize" not in help_text


def test_flagfile_includes_resolve_beside_the_including_file(tmp_path, monkeypatch):
    from trainers import flags as run_flags  # pylint: disable=import-outside-toplevel

    monkeypatch.chdir(tmp_path)  # not the repository: configs/... is not found from here
    args = run_flags.expand_flagfiles([f"--flagfile={REPO / 'configs' / 'mini_maml_mgaug.cfg'}",
                                       "--n_way=3"])
    assert "--learner=maml" in args and "--mgaug=catfish" in args
    assert args[-1] == "--n_way=3"  # the command line still overrides the files
    (tmp_path / "a.cfg").write_text("# a comment\n--flagfile=missing.cfg\n")
    with pytest.raises(run_flags.FlagfileError,
                       match=r"--flagfile=missing.cfg \(included by .*a.cfg\) not found; "
                             r"looked at .*missing.cfg"):
        run_flags.expand_flagfiles(["--flagfile=a.cfg"])


def test_readme_test_command_shows_skip_reasons_and_says_what_they_need():
    readme = (REPO / "README.md").read_text()
    command = 'python -m pytest -q -rs -m "not slow"'
    assert command in readme and command in (REPO / ".ci" / "run").read_text()
    for needed in ("../shared/data", "MGAUG_SHARED_DATA", "images_background.zip",
                   "miniimagenet_subset20.tar", "CPU-minutes"):
        assert needed in readme, needed
