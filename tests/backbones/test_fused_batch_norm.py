"""The fused batch-norm kernel (mixed precision's fast path) against the plain ops.

The plain path is exact to every order (float64 finite differences in
tests/learners/test_meta_gradients.py); the fused one must agree with it in
float32 on the outputs, the moving statistics, and the second-order MAML
meta-gradient (gradient of the inner loop's fused gradients).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization, use_fused
from tests.conftest import make_episode_batch


def test_fused_layer_matches_plain_outputs_gradients_and_moving_statistics():
    x = tf.random.stateless_normal([6, 5, 5, 4], seed=[1, 2]) * 3.0 + 1.5
    weights = tf.random.stateless_normal([6, 5, 5, 4], seed=[5, 6])
    layers = [MetaBatchNormalization(fused=fused) for fused in (False, True)]
    results = []
    for layer in layers:
        layer.build(x.shape)
        layer.gamma.assign([0.5, 1.0, 2.0, -1.0])
        layer.beta.assign([0.1, 0.0, -0.3, 1.0])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y ** 3 * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y0, g0, m0, v0), (y1, g1, m1, v1) = results
    np.testing.assert_allclose(y1, y0, atol=2e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m1, m0, atol=1e-6)
    # Population (biased) variance in the moving statistics, not Bessel's.
    np.testing.assert_allclose(v1, v0, rtol=1e-5)


def test_fused_choice_rules():
    assert use_fused("auto", "bfloat16", 4) and use_fused("auto", "float16", 4)
    assert not use_fused("auto", "float32", 4) and use_fused(True, "float32", 4)
    assert not use_fused(True, "float64", 4) and not use_fused(True, "bfloat16", 2)
    with pytest.raises(ValueError, match="fused must be one of"):
        MetaBatchNormalization(fused="yes")


def build_maml(fused, dtype="float32"):
    keras.utils.set_random_seed(0)
    backbone = mg.Conv4(filters=8, fused_batch_norm=fused, dtype=dtype)
    learner = mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.05, inner_steps=3)
    learner.build((16, 16, 1))
    return learner


def test_second_order_maml_meta_gradient_through_fused_batch_norm_matches_plain():
    batch = make_episode_batch(0, tasks=2, size=16)
    plain, fused = build_maml(False), build_maml(True)
    for source, target in zip(plain.variables, fused.variables):
        target.assign(source)
    loss_0, grads_0 = plain.compute_meta_gradients(batch)
    loss_1, grads_1 = fused.compute_meta_gradients(batch)
    np.testing.assert_allclose(float(loss_1), float(loss_0), rtol=1e-5)
    a = np.concatenate([np.ravel(g) for g in grads_0])
    b = np.concatenate([np.ravel(g) for g in grads_1])
    # Second-order terms matter here: FOMAML's gradient differs from MAML's
    # far more than this tolerance.
    assert np.max(np.abs(a - b)) <= 1e-4 * np.max(np.abs(a))
    first_order = mg.FOMAML(fused.network, 3, inner_lr=0.05, inner_steps=3)
    _, grads_fo = first_order.compute_meta_gradients(batch)
    c = np.concatenate([np.ravel(g) for g in grads_fo])
    assert np.max(np.abs(a - c)) > 100 * np.max(np.abs(a - b))

