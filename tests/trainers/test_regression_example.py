"""docs/examples/sinusoid.py runs as written: MAML regression on the sinusoid tasks."""

import runpy
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "sinusoid.py"


def test_sinusoid_example_meta_trains_and_adapts_to_new_tasks(capsys):
    errors = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert "after 600 meta-steps: query MSE" in out
    assert len(errors) == 40 and all(np.isfinite(errors)) and min(errors) > 0
    mean, ci95 = np.mean(errors), 1.96 * np.std(errors) / np.sqrt(40)
    assert f"40 new tasks: {mean:.3f} +- {ci95:.3f}" in out
    # An untrained network's MSE is about E[A^2] / 2 = 4.3; 600 meta-steps halve it.
    assert mean < 2.5
