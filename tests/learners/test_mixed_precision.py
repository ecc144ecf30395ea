"""mixed_bfloat16: float32 weights and inner loop, 16-bit convolutions, sound results."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from tests.conftest import make_episode_batch


def build(kind, dtype):
    keras.utils.set_random_seed(0)
    backbone = mg.Conv4(filters=8, dtype=dtype)
    if kind == "protonet":
        learner = mg.ProtoNet(backbone, 3)
    else:
        learner = mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.01, inner_steps=5)
    learner.build((28, 28, 1))
    return learner


def flat(gradients):
    return np.concatenate([np.asarray(g, np.float64).reshape(-1) for g in gradients])


# Measured (fused batch norm, the mixed-precision default): MAML loss within 2.2 %,
# gradient cosine 0.939; ProtoNet 0.9 %, 0.991 (float32 batch norm: 1.1 %, 0.945; 0.7 %, 0.991).
@pytest.mark.parametrize("kind, min_cosine", [("maml", 0.9), ("protonet", 0.98)])
def test_mixed_bfloat16_meta_gradients_stay_close_to_float32(kind, min_cosine):
    batch = make_episode_batch(0, tasks=2, size=28)
    reference, mixed = build(kind, "float32"), build(kind, "mixed_bfloat16")
    for source, target in zip(reference.variables, mixed.variables):
        target.assign(source)
    assert mixed.network.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)
    loss_32, gradients_32 = reference.compute_meta_gradients(batch)
    loss_16, gradients_16 = mixed.compute_meta_gradients(batch)
    assert all(g.dtype == tf.float32 for g in gradients_16)
    assert abs(float(loss_16) - float(loss_32)) < 0.03 * float(loss_32)
    a, b = flat(gradients_32), flat(gradients_16)
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > min_cosine


# mixed_float16 through the loss-scaled path train_step takes (scale 2^10 here;
# Keras's dynamic scale starts at 2^15 and halves on overflow). Measured:
# MAML (5 second-order inner steps) loss within 0.04 %, gradient cosine 0.89
# (float16's narrow exponent range; bfloat16: 0.945); ANIL 1.000; ProtoNet 0.999.
@pytest.mark.parametrize("kind, min_cosine", [("maml", 0.85), ("protonet", 0.99)])
def test_mixed_float16_meta_gradients_stay_close_to_float32(kind, min_cosine):
    batch = make_episode_batch(0, tasks=2, size=28)
    reference, mixed = build(kind, "float32"), build(kind, "mixed_float16")
    for source, target in zip(reference.variables, mixed.variables):
        target.assign(source)
    assert mixed.network.compute_dtype == "float16"
    scale = 2.0 ** 10
    loss_32, gradients_32 = reference.compute_meta_gradients(batch)
    gradients_16, logs, _ = mixed._meta_gradients_and_logs(batch, loss_scale=tf.constant(scale))
    assert all(g.dtype == tf.float32 for g in gradients_16)
    assert abs(float(logs["loss"]) - float(loss_32)) < 0.01 * float(loss_32)
    a, b = flat(gradients_32), flat(gradients_16) / scale
    assert np.all(np.isfinite(b))
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > min_cosine
    assert 0.95 < np.linalg.norm(b) / np.linalg.norm(a) < 1.05
