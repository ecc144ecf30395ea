"""The CLI trains in mixed_float16: loss-scaled meta-steps, the loss scale checkpointed."""

import numpy as np
import pytest

from mgaug_tf_cli import flags as run_flags

from tests.trainers.conftest import GLYPHS, checkpoint_tensors


@pytest.mark.slow
def test_cli_trains_in_mixed_float16_and_checkpoints_the_loss_scale(tmp_path):
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel
    model_dir = tmp_path / "model"
    train.run(run_flags.parse_config([
        f"--model_dir={model_dir}", *GLYPHS, "--dtype=mixed_float16", "--mode=train",
        "--train_steps=2", "--checkpoint_every=2", "--summary_every=1", "--eval_every=100",
        "--val_episodes=4"]))
    tensors = checkpoint_tensors(model_dir / "ckpt-2")
    scales = [value for name, value in tensors.items() if "dynamic_scale" in name]
    iterations = [value for name, value in tensors.items()
                  if "inner_optimizer" in name and "iterations" in name]
    assert len(scales) == 1 and len(iterations) == 1, sorted(tensors)
    # Keras's dynamic loss scaling: a step whose scaled gradients overflow is
    # skipped and halves the scale (from 2^15); the others are applied.
    skipped = int(round(np.log2(2.0 ** 15 / float(scales[0]))))
    assert float(scales[0]) == 2.0 ** (15 - skipped)
    assert int(iterations[0]) == 2 - skipped >= 1
    assert all(np.all(np.isfinite(value)) for value in tensors.values()
               if np.issubdtype(np.asarray(value).dtype, np.floating))
