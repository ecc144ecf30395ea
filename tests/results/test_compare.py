"""`trainers/compare.py`: arms over seeds, t-tests, the Markdown block and plot."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mgaug_tf_cli import compare, report
from tests.results.conftest import PNG_SIGNATURE, REPO


@pytest.mark.parametrize("t, dof, p", [
    (2.776445, 4, 0.05), (1.959964, 10 ** 6, 0.05), (3.169273, 10, 0.01), (0.0, 3, 1.0),
    (12.7062, 1, 0.05)])
def test_student_t_p_values_match_tables(t, dof, p):
    assert compare.student_t_two_sided_p(t, dof) == pytest.approx(p, abs=2e-6)


def test_welch_and_paired_statistics():
    t, dof, p = compare.welch_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert t == pytest.approx(-3.0 / np.sqrt(2.0 / 3.0))
    assert dof == pytest.approx(4.0)
    assert p == pytest.approx(0.02131, abs=1e-4)
    t, dof, _ = compare.paired_t_test([2.0, 4.0, 7.0], [1.0, 2.0, 3.0])
    assert t == pytest.approx(7.0 / 3.0 / (np.std([1.0, 2.0, 4.0], ddof=1) / np.sqrt(3.0)))
    assert dof == 2


def write_run(root, name, episode_accuracies, eval_seed=0):
    folder = root / name
    folder.mkdir(parents=True)
    accuracies = np.asarray(episode_accuracies, float)
    (folder / "eval_test.json").write_text(json.dumps({
        "dataset": "omniglot", "learner": "protonet", "n_way": 5, "k_shot": 1, "k_query": 15,
        "eval_seed": eval_seed, "num_episodes": len(accuracies), "split": "test", "step": 600,
        "mean_accuracy": accuracies.mean(), "std_accuracy": accuracies.std(),
        "ci95": 1.96 * accuracies.std() / np.sqrt(len(accuracies)),
        "per_episode_accuracy": accuracies.tolist(), "config": {"mgaug": "none"}}))
    return folder


@pytest.fixture
def arms(tmp_path):
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.6, 0.95, size=300)  # shared episodes: some are harder
    folders = []
    for seed in range(3):
        folders.append(write_run(tmp_path, f"baseline_seed{seed}",
                                 difficulty + rng.normal(0, 0.01, 300)))
        folders.append(write_run(tmp_path, f"better_seed{seed}",
                                 difficulty + 0.05 + rng.normal(0, 0.01, 300)))
        folders.append(write_run(tmp_path, f"same_seed{seed}",
                                 difficulty + rng.normal(0, 0.01, 300)))
    return folders


def test_cli_groups_seeds_and_calls_only_the_real_difference_significant(arms, tmp_path):
    output, plot = tmp_path / "docs" / "results.md", tmp_path / "docs" / "plots" / "cmp.png"
    output.parent.mkdir()
    output.write_text("# Results\n\nhand-written\n")
    completed = subprocess.run(
        [sys.executable, "trainers/compare.py", "--model_dirs", *map(str, arms),
         "--baseline=baseline", "--output", str(output), "--plot", str(plot)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    text = output.read_text()
    assert text.startswith("# Results\n\nhand-written\n") and compare.BEGIN_MARKER in text
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| ") and "seed" not in line}
    assert rows["better"][1] == "3" and rows["better"][-1] == "yes, better"
    assert float(rows["better"][6]) == pytest.approx(5.0, abs=0.3)
    assert rows["same"][-1] in ("no", "episodes only")
    assert rows["baseline"][-1] == "(baseline)"
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert "![MGAug comparison](plots/cmp.png)" in text


def test_runs_on_other_episodes_are_refused(tmp_path):
    runs = [report.load_run(str(write_run(tmp_path, "baseline_seed0", [0.5, 1.0]))),
            report.load_run(str(write_run(tmp_path, "other_seed0", [0.5, 1.0], eval_seed=1)))]
    with pytest.raises(report.ReportError, match="different episodes"):
        compare.compare(runs, "baseline")
    with pytest.raises(report.ReportError, match="no runs of the baseline arm 'base'"):
        compare.compare(runs[:1], "base")


def test_regression_runs_are_refused_naming_the_run(tmp_path):
    folders = []
    for name in ("baseline_seed0", "mgaug_seed0"):
        folder = tmp_path / name
        folder.mkdir()
        # The evaluation JSON of a regression run (mgaug-train on --dataset=sinusoid).
        (folder / "eval_test.json").write_text(json.dumps({
            "dataset": "sinusoid", "learner": "maml", "n_way": None, "k_shot": 10,
            "k_query": 10, "eval_seed": 0, "num_episodes": 2, "split": "test", "step": 2,
            "objective": "regression", "mean_mse": 0.5, "std_mse": 0.1, "ci95": 0.14,
            "per_episode_mse": [0.4, 0.6], "config": {"mgaug": "none"}}))
        folders.append(folder)
    runs = [report.load_run(str(folder)) for folder in folders]
    with pytest.raises(report.ReportError, match=r"baseline_seed0 is a regression run \(its "
                       r"evaluation gives MSE\): mgaug-compare compares classification"):
        compare.compare(runs, "baseline")
