"""mgaug-train answers --help, --helpfull and refused flags before it imports TensorFlow,
with the constructors' own rules (`mgaug_tf.checks`)."""

import subprocess
import sys

import pytest

from mgaug_tf import checks, factory, registry
from mgaug_tf import config as config_lib
from mgaug_tf.learners.gradient import GradientLearner
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import REPO, cli_env


# Runs mgaug-train with an audit hook that reports, on stderr, every import of
# TensorFlow or Keras the moment it starts (before the program ends with os._exit).
_WATCHED = """
import sys
def report(event, args):
    if event == "import" and args[0] in ("tensorflow", "keras"):
        sys.stderr.write(f"imported {args[0]}\\n")
sys.addaudithook(report)
sys.argv = ["mgaug-train", *sys.argv[1:]]
from mgaug_tf_cli import train
train.main()
"""


def _user_env():
    """A user's environment: TF_CPP_MIN_LOG_LEVEL unset, so the program filters the noise."""
    env = cli_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _program(*args):
    """Runs `mgaug-train args`: (exit code, stdout, stderr lines, {"tensorflow", "keras"} seen)."""
    completed = subprocess.run([sys.executable, "-c", _WATCHED, *args], capture_output=True,
                               text=True, env=_user_env(), cwd=REPO, timeout=120, check=False)
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    imported = {line.split()[1] for line in lines if line.startswith("imported ")}
    said = [line for line in lines if not line.startswith("imported ")]
    return completed.returncode, completed.stdout, said, imported


@pytest.mark.parametrize("args, message", [
    (["--lerner=maml"], "mgaug-train: error: Unknown command line flag 'lerner'. Did you mean: "
                        "learner ?"),
    (["--keep_min=1.5", "--mgaug=catfish"],
     "mgaug-train: error: --keep_min=1.5 --keep_max=1.0: MGAug: `keep_range` must be (keep_min, "
     "keep_max), keep ratios in (0, 1] with keep_min <= keep_max. Received: "
     "keep_range=(1.5, 1.0)"),
    (["--inner_lr=0"], "mgaug-train: error: --inner_lr=0.0: maml: `inner_lr` must be a positive "
                       "number. Received: inner_lr=0.0"),
    (["--outer_lr=-1"], "mgaug-train: error: --outer_lr=-1.0: `learning_rate` must be positive. "
                        "Received: learning_rate=-1.0"),
    (["--flagfile=no_such.cfg"], "mgaug-train: error: --flagfile=no_such.cfg not found; looked at "
                                 f"{REPO / 'no_such.cfg'}."),
    (["stray"], "mgaug-train: error: unexpected arguments ['stray']; flags look like "
                "--name=value."),
])
def test_refused_flags_are_one_line_and_exit_2_without_importing_tensorflow(args, message):
    code, stdout, said, imported = _program("--model_dir=unused", *args)
    assert code == 2 and stdout == ""
    assert said == [message]
    assert imported == set()


def test_help_and_helpfull_exit_0_with_the_groups_without_importing_tensorflow():
    code, text, said, imported = _program("--help")
    assert code == 0 and said == [] and imported == set()
    full_code, full, full_said, full_imported = _program("--helpfull")
    assert full_code == 0 and full_said == [] and full_imported == set()
    headers = [line for line in full.splitlines() if line.endswith(":") and " " not in
               line.replace("model: ", "")]
    assert headers == ["data:", "episodes:", "model: backbone:", "model: learner:", "MGAug:",
                       "optimizer:", "trainer:", "runtime:", "absl.app:", "absl.logging:"]
    assert full.startswith(text.rsplit("\n--flagfile", 1)[0])  # --help's groups, unchanged
    assert "--verbosity" in full and "--[no]vectorize" not in full
    # --pooling and --resolutions name the same ways out for a flatten head.
    entries = {entry.split(":", 1)[0]: " ".join(entry.split())
               for entry in text.split("\n  --")[1:]}
    for flag in ("pooling", "resolutions"):
        for way in ("--mgaug_flatten_head", "--mgaug_parity", "ProtoNet"):
            assert way in entries[flag], (flag, way)
    assert "--pooling=avg" in entries["resolutions"] and "avg needs neither" in entries["pooling"]


def test_the_dataset_name_is_checked_last_as_its_table_imports_tensorflow():
    """Also shows that the audit hook above sees TensorFlow's import."""
    code, stdout, said, imported = _program("--model_dir=unused", "--dataset=imagenet")
    assert code == 2 and stdout == "" and len(said) == 1
    assert said[0].startswith("mgaug-train: error: --dataset=imagenet: Unknown dataset 'imagenet'")
    assert imported == {"tensorflow", "keras"}


def test_a_missing_model_dir_is_refused_before_tensorflow():
    code, stdout, said, imported = _program("--dataset=glyphs")
    assert (code, stdout, imported) == (2, "", set())
    assert said == ["mgaug-train: error: --model_dir is required: the run's folder "
                    "(checkpoints, summaries, results)."]


def test_the_checks_before_tensorflow_refuse_what_the_constructors_refuse():
    """checks.check_config against factory's constructors, on every value it checks."""
    assert set(checks.GRADIENT_LEARNERS) == {
        name for name in ("maml", "fomaml", "anil", "metasgd", "protonet")
        if issubclass(registry.learner_class(name), GradientLearner)}
    refused = [["--keep_min=0"], ["--keep_min=0.9", "--keep_max=0.8"], ["--keep_max=1.5"],
               ["--num_subnets=0"], ["--image_size=28", "--resolutions=32"],
               ["--resolutions=0"], ["--mgaug_parity", "--mgaug_resize=half_pixel"],
               ["--mgaug_width_execution=sliced"], ["--n_way=1"], ["--inner_lr=0"],
               ["--inner_steps=0"], ["--eval_inner_steps=-1"], ["--learner=anil",
                                                                "--inner_lr=-2"],
               ["--outer_lr=0"], ["--outer_lr_decay_steps=10", "--outer_lr_decay_rate=1.5"]]
    for args in refused:
        experiment = run_flags.parse_config(["--mgaug=catfish", *args])
        with pytest.raises(config_lib.ConfigFieldError) as early:
            checks.check_config(experiment)
        with pytest.raises(config_lib.ConfigFieldError) as built:
            image = experiment.data.image_size
            factory.build_optimizer(experiment.optimizer)
            factory.build_learner(experiment.model, None if image is None else (image, image, 1))
        assert early.value.paths == built.value.paths, args
        assert early.value.message.split(": ", 1)[1] == built.value.message.split(": ", 1)[1]
    checks.check_config(run_flags.parse_config(["--mgaug=catfish", "--learner=protonet",
                                                "--inner_lr=-2"]))  # no inner loop


_WATCHED_PREDICT = _WATCHED.replace('"mgaug-train"', '"mgaug-predict"').replace(
    "from mgaug_tf_cli import train\ntrain.main()", "from mgaug_tf_cli import predict\npredict.main()")


@pytest.mark.parametrize("args, message", [
    (["--bogus=1"], "mgaug-predict: error: Unknown command line flag 'bogus'"),
    ([], "mgaug-predict: error: --saved_model, --support_dir, --query_dir must be given."),
    (["--saved_model=.", "--support_dir=no_such", "--query_dir=."],
     "mgaug-predict: error: --support_dir=no_such is not a folder."),
])
def test_predict_refuses_flags_in_one_line_without_importing_tensorflow(args, message):
    completed = subprocess.run([sys.executable, "-c", _WATCHED_PREDICT, *args],
                               capture_output=True, text=True, env=_user_env(), cwd=REPO,
                               timeout=120, check=False)
    said = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode == 2 and completed.stdout == ""
    assert said == [message]  # no "imported tensorflow" line either


def test_predict_help_lists_its_flags_without_importing_tensorflow():
    completed = subprocess.run([sys.executable, "-c", _WATCHED_PREDICT, "--help"],
                               capture_output=True, text=True, env=_user_env(), cwd=REPO,
                               timeout=120, check=False)
    assert completed.returncode == 0 and completed.stderr.strip() == ""
    for flag in ("--saved_model", "--support_dir", "--query_dir"):
        assert flag in completed.stdout


def test_predict_names_a_folder_that_is_not_a_saved_model(tmp_path):
    from mgaug_tf_cli import predict

    (tmp_path / "support" / "a").mkdir(parents=True)
    (tmp_path / "query").mkdir()
    with pytest.raises(predict.InputError, match=r"is not a SavedModel \(no saved_model.pb\); "
                                                 r"mgaug-train exports into <model_dir>/export"):
        predict.predict(str(tmp_path), str(tmp_path / "support"), str(tmp_path / "query"))
