"""Bad flags and data stop the CLI with one clear message, a non-zero exit, no traceback."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from mgaug_tf import config as config_lib
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import GLYPHS, REPO, RUN, Cli, checkpoint_tensors


@pytest.mark.parametrize("args, message", [
    (["--n_way=1001"], "--n_way=1001 is more than the 1000 classes of glyphs train"),
    (["--k_shot=10", "--k_query=11"], "--k_shot + --k_query = 10 + 11 = 21 images per class, "
                                      "but only 0 classes of glyphs train"),
    (["--val_split=tset"], "--val_split=tset"),
    (["--dataset=miniimagenet"], "--data_dir=None: miniimagenet needs data_dir"),
    (["--dataset=miniimagenet", "--data_dir=/no/such/folder"],
     "--data_dir=/no/such/folder: data_dir /no/such/folder does not exist"),
    (["--strategy=multi_worker"], "needs the TF_CONFIG environment variable"),
    (["--image_size=12"], "--image_size=12: Conv4: `input_shape`"),
    (["--pooling=avg", "--mgaug=catfish", "--resolutions=20"], "--resolutions=20: MGAug"),
    (["--keep_min=1.5", "--mgaug=catfish"], "--keep_min=1.5 --keep_max=1.0: MGAug"),
    (["--keep_min=0.9", "--keep_max=0.8", "--mgaug=catfish"], "--keep_min=0.9 --keep_max=0.8"),
    (["--resolutions=16", "--mgaug=catfish", "--learner=maml"], "--mgaug_flatten_head=none"),
    (["--resolutions=12", "--mgaug=catfish", "--pooling=avg"], "--resolutions=12: MGAug"),
    (["--backbone=conv4", "--filters=4,8"], "--filters=4,8: conv4: --filters takes one value"),
    (["--outer_lr=-1"], "--outer_lr=-1.0: `learning_rate` must be positive"),
    (["--inner_lr=0"], "--inner_lr=0.0"),
    (["--n_way=1"], "--n_way=1"),
    (["--k_shot=5", "--eval_k_query=16"], "--k_shot + --eval_k_query = 5 + 16 = 21 images per "
                                          "class, but only 0 classes of glyphs val"),
    (["--learner=protonet", "--recompute"], "--recompute: recompute applies to the "
                                            "gradient-based learners (protonet has no inner "
                                            "loop)"),
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


def test_eval_mode_evaluates_the_run_as_trained_from_its_config(reference_run, tmp_path):
    """`--mode=eval --model_dir=X` alone: every other setting comes from X's config.json."""
    before = json.loads((reference_run / "eval_test.json").read_text())
    cli = Cli(RUN, ["--mode=eval", f"--model_dir={reference_run}"], tmp_path, "eval")
    assert cli.wait() == 0, cli.stderr
    after = json.loads((reference_run / "eval_test.json").read_text())
    # Same weights, episodes and settings: the same accuracies.
    assert after["per_episode_accuracy"] == before["per_episode_accuracy"]
    assert after["eval_inner_steps"] == 2 and after["config"]["bn_mode"] == "inductive"
    # A model setting given that differs from the run's is refused, naming it.
    refused = Cli(RUN, ["--mode=eval", f"--model_dir={reference_run}", "--filters=16"],
                  tmp_path, "refused")
    assert refused.wait() == 2
    assert "--filters=8 there, --filters=16 now" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("text, message", [
    ('{"model": {', "Expecting property name"),
    ('{"model": {"mgaug": {"old_knob": 1}}}', "unknown field(s) ['old_knob']"),
    ('{"model": {"backbone": {"filters": 16}}}', "`filters` must be a tuple of integers"),
])
def test_a_damaged_config_json_is_one_message_naming_the_file(run_main, reference_run, tmp_path,
                                                               text, message):
    copy = tmp_path / "copy"
    shutil.copytree(reference_run, copy)
    (copy / "config.json").write_text(text)
    # The copy's flags.cfg names the original folder: the command line's comes last.
    code, stderr, _ = run_main(f"--flagfile={copy / 'flags.cfg'}", f"--model_dir={copy}",
                               model_dir=copy)
    assert code == 2 and "Traceback" not in stderr
    assert f"{copy / 'config.json'} cannot be read as this version's config" in stderr
    assert message in stderr


def test_run_folder_config_json_is_the_runs_config(reference_run):
    saved = config_lib.ExperimentConfig.from_json((reference_run / "config.json").read_text())
    assert saved == run_flags.config_from_flagfile(reference_run / "flags.cfg")
    assert (saved.model.learner.name, saved.model.learner.n_way) == ("maml", 3)
    assert saved.model.mgaug.strategy == "catfish" and saved.optimizer.name == "sgd"


@pytest.mark.slow
def test_a_run_written_before_config_json_is_compared_through_its_flags_cfg(run_main, tmp_path):
    """Older run folders hold flags.cfg only (with the removed --novectorize): read it once."""
    model_dir = tmp_path / "old"
    code, _, _ = run_main(*GLYPHS, "--train_steps=1", "--checkpoint_every=1", "--eval_every=1",
                          "--val_episodes=1", "--mode=train", model_dir=model_dir)
    assert code == 0
    (model_dir / "config.json").unlink()
    text = (model_dir / "flags.cfg").read_text()
    (model_dir / "flags.cfg").write_text(text + "--novectorize\n")
    code, stderr, _ = run_main(*GLYPHS, "--n_way=4", "--mgaug=catfish", "--train_steps=2",
                               model_dir=model_dir)
    assert code == 2 and "Traceback" not in stderr
    assert ("--n_way=3 there, --n_way=4 now (model.learner.n_way); --mgaug=none there, "
            "--mgaug=catfish now (model.mgaug.strategy)") in stderr
    # The same command resumes.
    code, stderr, _ = run_main(*GLYPHS, "--train_steps=2", "--checkpoint_every=1",
                               "--eval_every=1", "--val_episodes=1", "--mode=train",
                               model_dir=model_dir)
    assert code == 0, stderr
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")


@pytest.mark.parametrize("args, message", [
    (["--mgaug=dropout"], "--mgaug"),
    (["--dataset=imagenet"], "--dataset=imagenet: Unknown dataset 'imagenet'"),
    (["--dataset=tfds:imagenet"], "available: tfds:omniglot"),
    (["--resolutions=84,big"], "--resolutions=84,big: expected comma-separated integers"),
    (["--filters=a"], "--filters=a: expected comma-separated integers"),
    (["--vectorize"], "Unknown command line flag 'vectorize'"),
])
def test_flag_parsing_errors_name_the_flag(args, message):
    """Flags check syntax only (types, names, lists); values are the constructors' to refuse."""
    with pytest.raises(flags.Error, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        run_flags.parse_config(["--model_dir=unused", *args])


def test_parse_config_leaves_the_global_flags_alone():
    config = run_flags.parse_config(["--learner=fomaml", "--resolutions=28,21",
                                     "--mgaug=catfish", "--nocheck_image_files"])
    assert config.model.learner.name == "fomaml" and config.model.mgaug.resolutions == (28, 21)
    assert config.data.check_image_files is False
    assert not flags.FLAGS.is_parsed() or flags.FLAGS["learner"].value != "fomaml"


def test_every_config_field_is_one_flag_and_round_trips_through_flags_and_json():
    specs = list(config_lib.FIELDS.values())
    assert len({spec.flag for spec in specs}) == len(specs)  # one flag per field
    changed = {"data.dataset": "omniglot", "data.image_size": 28, "episodes.k_shot": 5,
               "model.backbone.name": "resnet12", "model.backbone.filters": (8, 16, 24, 32),
               "model.learner.name": "protonet", "model.mgaug.strategy": "random_width",
               "model.mgaug.resolutions": (28, 20), "model.mgaug.parity": True,
               "optimizer.learning_rate": 0.25, "trainer.use_best_checkpoint": False,
               "runtime.model_dir": "runs/x", "runtime.cpu_devices": 2}
    config = config_lib.override(config_lib.ExperimentConfig(), changed)
    assert {path: config_lib.get(config, path) for path in changed} == changed
    lines = [line for line in run_flags.flagfile_text(config).splitlines()
             if line.startswith("--")]
    assert run_flags.parse_config(lines) == config
    assert config_lib.ExperimentConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["model"]["mgaug"]["resolutions"] == [28, 20]
    differing = config_lib.differences(config_lib.ExperimentConfig(), config)
    assert {spec.path for spec, _, _ in differing} == {
        path for path in changed if config_lib.FIELDS[path].fixed}
    with pytest.raises(ValueError, match="unknown field"):
        config_lib.ExperimentConfig.from_dict({"model": {"mgaug": {"keep": 1}}})
    with pytest.raises(ValueError, match="has no field 'colour'"):
        config_lib.override(config, {"model.colour": 1})


def test_cli_reports_errors_without_traceback_and_exits(tmp_path):
    """Through `python trainers/run.py`: absl's parse errors, replica checks, divergence.

    The processes must also end: a failed run still holds tf.data iterators
    whose Python-function threads could hang the interpreter's exit.
    """
    runs = {
        "keep": (["--keep_min=0", "--mgaug=catfish"], 2, "--keep_min=0.0 --keep_max=1.0: "),
        "replicas": (["--strategy=mirrored", "--cpu_devices=2", "--meta_batch_size=3"], 2,
                     "--meta_batch_size=3 is not divisible by the 2 replicas"),
        "typo": (["--learnr=maml"], 2, "Unknown command line flag 'learnr'"),
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
    assert not any((tmp_path / name).exists() for name in ("keep", "replicas", "typo"))
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
        config = run_flags.parse_config([f"--flagfile={path}"])
        if path.name.endswith("_mgaug.cfg") or path.name == "tiered.cfg":
            assert config.model.mgaug.strategy == "catfish", path
        if path.name != "mgaug_catfish.cfg":  # an include, not a run
            assert config.runtime.model_dir == f"runs/{path.stem}", path


def test_learning_rate_decay_and_eval_k_query_reach_the_run(tmp_path):
    import json  # pylint: disable=import-outside-toplevel

    from mgaug_tf_cli import report, train  # pylint: disable=import-outside-toplevel

    model_dir = tmp_path / "model"
    train.run(run_flags.parse_config([
        f"--model_dir={model_dir}", *GLYPHS, "--train_steps=4", "--summary_every=1",
        "--eval_every=4", "--val_episodes=2", "--eval_episodes=3", "--checkpoint_every=4",
        "--outer_lr=0.01", "--outer_lr_decay_steps=2", "--outer_lr_decay_rate=0.5",
        "--eval_k_query=3", "--mode=train_and_eval"]))
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
    from mgaug_tf_cli import train as run  # pylint: disable=import-outside-toplevel
    config = run_flags.parse_config([*GLYPHS, "--max_train_classes=7", "--train_classes_seed=4"])
    # pylint: disable=protected-access
    train, val = run._load_split(config, "train_split"), run._load_split(config, "val_split")
    text = run_flags.flagfile_text(config)
    assert train.num_classes == 7 and val.num_classes == 200
    assert train.class_names == run.data.load("glyphs", split="train", image_size=16
                                              ).sample_source_classes(7, 4).class_names
    assert "--max_train_classes=7" in text and "--train_classes_seed=4" in text
    assert config_lib.FIELDS["data.max_train_classes"].fixed
    assert config_lib.FIELDS["data.train_classes_seed"].fixed


def test_flagfile_includes_resolve_beside_the_including_file(tmp_path, monkeypatch):
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
    # configs/NAME is also found among the configs installed with the package.
    assert run_flags.parse_config(["--flagfile=configs/demo.cfg"]).runtime.model_dir \
        == "runs/demo"


def test_readme_test_command_shows_skip_reasons_and_says_what_they_need():
    readme = (REPO / "README.md").read_text()
    command = 'python -m pytest -q -rs -n 2 --dist=loadfile -m "not slow"'
    assert command in readme and command in (REPO / ".ci" / "run").read_text()
    for needed in ("../shared/data", "MGAUG_SHARED_DATA", "images_background.zip",
                   "miniimagenet_subset20.tar", "CPU-minutes"):
        assert needed in readme, needed
