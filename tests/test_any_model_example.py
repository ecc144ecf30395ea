"""docs/examples/lstm_sequences.py runs as written: second-order MAML through an LSTM."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "lstm_sequences.py"


def run_example(capsys, meta_steps):
    before, after = runpy.run_path(str(EXAMPLE))["main"](meta_steps=meta_steps)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == (f"100 new tasks, query accuracy after 3 inner steps: {before:.3f} before "
                    f"meta-training, {after:.3f} after {meta_steps} meta-steps (chance: 0.333)")
    return before, after


def test_lstm_example_runs_its_meta_training_and_evaluation(capsys):
    """A short run (the example's code path: fit and evaluate on sequences)."""
    before, after = run_example(capsys, meta_steps=10)
    assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0


@pytest.mark.slow
def test_lstm_example_learns_to_adapt_to_new_tasks(capsys):
    """As written (300 meta-steps): 3 inner steps on new tasks classify far above
    chance, and far better than before meta-training."""
    before, after = run_example(capsys, meta_steps=300)
    assert after > 0.55 and after > before + 0.15, (before, after)
