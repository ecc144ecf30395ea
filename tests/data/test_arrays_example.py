"""docs/examples/arrays.py runs as written: sequences in one npz, MAML with an MLP, new classes."""

import runpy
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "arrays.py"


def test_arrays_example_trains_and_evaluates_above_chance(capsys):
    accuracies = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert "FewShotSplit('arrays', split='train', num_classes=6, examples=60, " \
           "example_shape=(32, 3)" in out
    assert len(accuracies) == 10
    # 3-way: chance is 1/3; the waveform families are easy to tell apart after 20 meta-steps.
    assert np.mean(accuracies) > 0.6
    assert f"test accuracy over 10 episodes of new classes: {np.mean(accuracies):.3f}" in out
