"""A sinusoid run's SavedModel (mgaug-predict's refusal, the docs' snippet, its checks), MSE text."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf import export
from mgaug_tf_cli import flags as run_flags
from mgaug_tf.training import evaluation
from mgaug_tf_cli import predict, report, train
from tests.trainers.conftest import REPO
from tests.trainers.test_regression_cli import SINUSOID

DOCS = REPO / "docs" / "cli.md"
SNIPPET_EXPORT = "runs/sine/export"  # the folder the snippet in docs/cli.md loads


@pytest.fixture(scope="module")
def sinusoid_export(tmp_path_factory):
    """The export folder of a one-step sinusoid run (MAML, MLP)."""
    model_dir = tmp_path_factory.mktemp("sinusoid_run") / "model"
    train.run_and_report(run_flags.parse_config(
        [f"--model_dir={model_dir}", *SINUSOID, "--train_steps=1", "--eval_every=1",
         "--val_episodes=1", "--checkpoint_every=1", "--mode=train"]))
    return model_dir / "export"


def test_predict_says_in_one_line_that_the_export_takes_arrays(sinusoid_export, tmp_path):
    (tmp_path / "support" / "a").mkdir(parents=True)
    (tmp_path / "query").mkdir()
    with pytest.raises(predict.InputError) as error:
        predict.predict(str(sinusoid_export), str(tmp_path / "support"), str(tmp_path / "query"))
    assert str(error.value) == (
        f"--saved_model={sinusoid_export} is an export of a run on examples that are not images "
        "(objective regression): its one signature (few_shot_preprocessed, also "
        "serving_default) takes float32 examples of shape [1] (support_images [S, 1], "
        "query_images [M, 1]) and float32 targets support_labels [S, D], not image files; "
        "call it from Python: docs/cli.md \"The SavedModel\", \"Examples that are not images\".")
    # The section it names exists.
    assert "### Examples that are not images" in DOCS.read_text()


def test_an_unreadable_preprocessing_entry_ends_with_one_period(sinusoid_export, tmp_path):
    metadata = json.loads((sinusoid_export / export.METADATA_FILE).read_text())
    metadata["preprocessing"] = {"version": 99}
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / export.METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(predict.InputError) as error:
        predict.predict(str(tmp_path), str(tmp_path), str(tmp_path))
    assert str(error.value).endswith("unreadable preprocessing entry (preprocessing description "
                                     "of version 99; this mgaug_tf reads version 1).")


def _docs_snippet():
    """The Python block of docs/cli.md's "Examples that are not images" subsection."""
    section = DOCS.read_text().split("### Examples that are not images", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_snippet_predicts_with_a_sinusoid_export(sinusoid_export):
    code = _docs_snippet()
    assert code.count(f'"{SNIPPET_EXPORT}"') == 1
    namespace = {}
    exec(code.replace(SNIPPET_EXPORT, str(sinusoid_export)), namespace)  # pylint: disable=exec-used
    predictions = namespace["out"]["predictions"]
    assert predictions.dtype == tf.float32
    assert predictions.shape == (len(namespace["query"]), 1)
    assert np.isfinite(predictions.numpy()).all()
    # The support targets are adapted to: other targets give other predictions.
    other = namespace["predict"](support_images=namespace["x"],
                                 support_labels=-namespace["y"],
                                 query_images=namespace["query"])["predictions"]
    assert not np.allclose(other.numpy(), predictions.numpy())


def test_a_length_mismatch_names_the_regression_counts(sinusoid_export):
    signature = tf.saved_model.load(str(sinusoid_export)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"support_images and support_labels must hold the same number "
                             r"\(S\) of examples"):
        signature(support_images=np.zeros((4, 1), np.float32),
                  support_labels=np.zeros((3, 1), np.float32),
                  query_images=np.zeros((2, 1), np.float32))


def test_mse_has_four_decimals_in_the_run_and_in_the_report(tmp_path, capsys):
    # Mean 2.71 and CI 0.69296: four significant digits would print 2.71 and 0.693.
    result = evaluation.EvaluationResult("test", None, np.array([2.21, 3.21]),
                                         objective="regression")
    assert result.summary() == "test: MSE 2.7100 +- 0.6930 (95 % CI, 2 tasks)"
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval_test.json").write_text(json.dumps(result.to_json(
        n_way=None, config={"dataset": "sinusoid", "learner": "maml", "k_shot": 5})))
    assert report.cli(["--model_dirs", str(run), "--output", str(tmp_path / "report.md"),
                       "--plots_dir", str(tmp_path / "plots")]) == 0
    assert "run: MSE 2.7100 ± 0.6930 (2 tasks)" in capsys.readouterr().out
