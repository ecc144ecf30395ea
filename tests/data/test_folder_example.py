"""docs/examples/own_images.py runs as written: a generated image folder, MAML, new classes."""

import runpy
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "own_images.py"


def test_own_images_example_trains_and_evaluates(capsys):
    accuracies = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert "FewShotSplit('folder', split='train', num_classes=6, images=42, " \
           "image_shape=(28, 28, 3)" in out
    assert "converted to RGB and resized to 28x28" in out
    # 10 episodes of 3-way 2-query tasks: each accuracy counts right answers of 6 queries.
    assert len(accuracies) == 10
    assert all(0 <= accuracy <= 1 and float(accuracy * 6).is_integer()
               for accuracy in accuracies)
    assert f"test accuracy over 10 episodes of new classes: {np.mean(accuracies):.3f}" in out
