"""`trainers/report.py` on real (tiny) runs of `trainers/run.py` on the built-in glyphs."""

import json
import struct
import subprocess
import sys

import pytest
import tensorflow as tf
from PIL import Image

from mgaug_tf_cli import report
from tests.results.conftest import PNG_SIGNATURE, REPO, REPORT, finish, start_run

# Tiny but complete: training, validation every 3 steps, best checkpoint,
# evaluation on fixed episodes, export.
TINY = ["--dataset=glyphs", "--image_size=16", "--filters=4", "--n_way=3", "--k_shot=1",
        "--k_query=2", "--meta_batch_size=2", "--train_steps=6", "--eval_every=3",
        "--val_episodes=6", "--eval_episodes=12", "--checkpoint_every=3", "--summary_every=2",
        "--mode=train_and_eval"]
RUNS = {
    "protonet_glyphs": ["--learner=protonet", "--mgaug=none", "--bn_mode=transductive"],
    "fomaml_catfish_glyphs": ["--learner=fomaml", "--inner_steps=1", "--eval_inner_steps=2",
                            "--inner_lr=0.4", "--mgaug=catfish", "--num_subnets=2",
                            "--keep_min=0.8", "--keep_max=1.0", "--bn_mode=inductive"],
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Two finished runs (ProtoNet; first-order MAML + MGAug catfish), trained side by side."""
    root = tmp_path_factory.mktemp("report_runs")
    processes = {name: start_run(root / name, *TINY, *flags) for name, flags in RUNS.items()}
    for name, process in processes.items():
        finish(process, root / name, timeout=240)
    return [root / name for name in RUNS]


@pytest.fixture(scope="module")
def written(model_dirs, tmp_path_factory):
    """The report of `model_dirs` written by the CLI: (markdown text, plots folder)."""
    out = tmp_path_factory.mktemp("report")
    output, plots = out / "docs" / "results.md", out / "docs" / "plots"
    completed = subprocess.run(
        [sys.executable, str(REPORT), "--model_dirs", *map(str, model_dirs),
         "--output", str(output), "--plots_dir", str(plots)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return output.read_text(), plots


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row(table, name):
    """`{column: cell}` of the table row of run `name` (exactly one)."""
    lines = table.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| run |")))
    rows = [line for line in lines if line.startswith(f"| {name} |")]
    assert len(rows) == 1, table
    return dict(zip(header, _cells(rows[0])))


def test_table_shows_each_runs_measured_accuracy_ci_and_settings(model_dirs, written):
    text, _ = written
    for model_dir in model_dirs:
        result = json.loads((model_dir / "eval_test.json").read_text())
        cells = _row(text, model_dir.name)
        assert cells["accuracy (%)"] == f"{100 * result['mean_accuracy']:.2f}"
        assert cells["95 % CI (%)"] == f"± {100 * result['ci95']:.2f}"
        assert cells["episodes"] == str(result["num_episodes"]) == "12"
        assert cells["learner"] == result["config"]["learner"]
        assert cells["bn_mode"] == result["bn_mode"]
        assert cells["steps"] == str(result["step"])
        assert cells["dataset"] == "glyphs" and cells["setting"] == "3-way 1-shot"
    protonet, maml = _row(text, "protonet_glyphs"), _row(text, "fomaml_catfish_glyphs")
    assert protonet["MGAug"] == "none"
    assert maml["MGAug"] == "catfish K=2 keep 0.8-1"
    assert (protonet["bn_mode"], maml["bn_mode"]) == ("transductive", "inductive")
    assert "![validation accuracy](plots/validation_accuracy.png)" in text
    assert "![final accuracy](plots/final_accuracy.png)" in text


@pytest.mark.parametrize("name", [report.VALIDATION_PLOT, report.FINAL_PLOT])
def test_plots_are_valid_non_trivial_pngs(written, name):
    _, plots = written
    data = (plots / name).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200
    assert len(data) > 10_000  # axes, lines, labels: not an empty canvas
    with Image.open(plots / name) as image:
        image.verify()
    with Image.open(plots / name) as image:  # more than a couple of colours were drawn
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_validation_curve_is_read_from_the_event_files(model_dirs):
    for model_dir in model_dirs:
        run = report.load_run(str(model_dir))
        assert [step for step, _, _ in run.validation] == [3, 6]
        assert all(0.0 <= accuracy <= 1.0 and ci is not None and ci >= 0.0
                   for _, accuracy, ci in run.validation)
        # The evaluated checkpoint is the best validated one.
        best = max(run.validation, key=lambda item: item[1])
        assert run.evaluation["step"] in [step for step, accuracy, _ in run.validation
                                          if accuracy == best[1]]


def test_read_scalars_lets_a_rewritten_step_win_and_skips_non_scalars(tmp_path):
    for values in ([(1, 0.1), (2, 0.2)], [(2, 0.7), (3, 0.8)]):  # a run resumed at step 1
        writer = tf.summary.create_file_writer(str(tmp_path))
        with writer.as_default():
            for step, value in values:
                tf.summary.scalar("accuracy", value, step=step)
                tf.summary.histogram("weights", [value, 2 * value], step=step)
                tf.summary.text("note", "hello", step=step)
        writer.close()
    scalars = report.read_scalars(str(tmp_path))
    assert set(scalars) == {"accuracy"}
    assert [(step, round(value, 6)) for step, value in scalars["accuracy"]] == [
        (1, 0.1), (2, 0.7), (3, 0.8)]


def test_a_model_dir_without_evaluation_json_is_named_in_the_error(model_dirs, tmp_path,
                                                                  capsys):
    untrained = tmp_path / "not_evaluated"
    untrained.mkdir()
    (untrained / "flags.cfg").write_text("--learner=maml\n")
    missing = tmp_path / "does_not_exist"
    for bad in (untrained, missing):
        code = report.cli(["--model_dirs", str(model_dirs[0]), str(bad),
                            "--output", str(tmp_path / "out.md"),
                            "--plots_dir", str(tmp_path / "plots")])
        assert code == 2
        error = capsys.readouterr().err
        assert ": error: " in error and str(bad) in error and "Traceback" not in error
        assert not (tmp_path / "out.md").exists()
    with pytest.raises(report.ReportError, match="eval_val.json not found"):
        report.load_run(str(model_dirs[0]), split="val")


def test_regenerating_keeps_the_text_around_the_markers(model_dirs, tmp_path):
    output = tmp_path / "results.md"
    output.write_text(f"# Mine\n\nintro\n\n{report.BEGIN_MARKER}\nstale table\n"
                      f"{report.END_MARKER}\n\nclosing notes\n")
    runs = report.write_report([str(model_dirs[1])], str(output), str(tmp_path / "plots"))
    text = output.read_text()
    assert text.startswith("# Mine\n\nintro\n\n" + report.BEGIN_MARKER)
    assert text.endswith(report.END_MARKER + "\n\nclosing notes\n")
    assert "stale table" not in text
    assert f"| {runs[0].accuracy_percent:.2f} |" in text
    assert "protonet_glyphs" not in text


def test_a_missing_cross_domain_split_suggests_the_test_dataset_flags(tmp_path):
    # eval_test_omniglot.json is what `--test_dataset=omniglot` writes for --eval_split=test;
    # --eval_split=test_omniglot would be refused as no split.
    with pytest.raises(report.ReportError) as error:
        report.find_evaluation_json(str(tmp_path), split="test_omniglot")
    assert str(error.value) == (
        f"{tmp_path / 'eval_test_omniglot.json'} not found: run `mgaug-train --mode=eval "
        "--eval_split=test --test_dataset=omniglot --test_data_dir=<omniglot's files> "
        f"--model_dir={tmp_path}` (no --test_data_dir for the built-in glyphs) first.")
    with pytest.raises(report.ReportError, match=r"run `mgaug-train --mode=eval "
                                                 r"--eval_split=val --model_dir=.*` first\.$"):
        report.find_evaluation_json(str(tmp_path), split="val")
