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


# Measured: MAML loss within 1.1 %, gradient cosine 0.945; ProtoNet 0.1 %, 0.994.
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
