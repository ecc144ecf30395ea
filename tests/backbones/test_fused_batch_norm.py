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
from mgaug_tf.backbones.batch_norm import (SECOND_ORDER_SCOPE, MetaBatchNormalization,
                                           batch_norm_second_derivative, batch_normalize,
                                           use_fused)
from tests.conftest import make_episode_batch, second_order_ops


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
    assert use_fused("auto", "float32", 4) and use_fused(True, "float32", 4)
    assert not use_fused(False, "float32", 4) and not use_fused(False, "bfloat16", 4)
    assert not use_fused("auto", "float64", 4) and not use_fused(True, "float64", 4)
    assert not use_fused(True, "bfloat16", 2)
    with pytest.raises(ValueError, match="`fused` must be one of"):
        MetaBatchNormalization(fused="yes")


def plain_and_fused(learner_class=mg.MAML, inner_steps=3):
    """Two second-order learners on Conv4-8, plain and fused batch norm, same weights."""
    learners = []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        backbone = mg.Conv4(filters=8, fused_batch_norm=fused)
        learner = learner_class(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.05,
                                inner_steps=inner_steps)
        learner.build((16, 16, 1))
        learners.append(learner)
    for source, target in zip(learners[0].variables, learners[1].variables):
        target.assign(source)
    return learners


def batch_norm_gradient(grad_outputs, inputs, gamma, epsilon):
    """`(grad_x, grad_gamma, grad_beta)` of training-mode batch norm in plain ops.

    The formulas of `batch_norm_second_derivative`'s docstring, differentiable
    to every order: automatic differentiation of them is the trusted twin of
    the closed form (float32 for 16-bit inputs, else `inputs`' dtype).
    """
    axes = [0, 1, 2]
    dtype = tf.float32 if inputs.dtype in (tf.bfloat16, tf.float16) else inputs.dtype
    x = tf.cast(inputs, dtype)
    dy = tf.cast(grad_outputs, dtype)
    gamma = tf.cast(gamma, dtype)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], dtype)
    centered = x - tf.reduce_mean(x, axis=axes)
    inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=axes) + epsilon)
    normalized = centered * inverse_std
    grad_beta = tf.reduce_sum(dy, axis=axes)
    grad_gamma = tf.reduce_sum(dy * normalized, axis=axes)
    grad_x = gamma * inverse_std * (dy - (grad_beta + normalized * grad_gamma) / count)
    return tf.cast(grad_x, inputs.dtype), grad_gamma, grad_beta


def test_second_order_maml_meta_gradient_through_fused_batch_norm_matches_plain():
    batch = make_episode_batch(0, tasks=2, size=16)
    plain, fused = plain_and_fused()
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



def test_batch_norm_gradient_equals_autodiff_of_the_plain_ops_in_float64():
    x = tf.random.stateless_normal([3, 4, 5, 6], seed=[1, 2], dtype=tf.float64) * 2.0 + 0.5
    gamma = tf.random.stateless_normal([6], seed=[3, 4], dtype=tf.float64)
    beta = tf.random.stateless_normal([6], seed=[5, 6], dtype=tf.float64)
    grad_y = tf.random.stateless_normal(x.shape, seed=[7, 8], dtype=tf.float64)
    statistics = tf.zeros([6], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y = batch_normalize(x, gamma, beta, statistics, statistics + 1.0, 1e-5, fused=False,
                            training=True)[0]
    expected = tape.gradient(y, [x, gamma, beta], output_gradients=grad_y)
    for got, want in zip(batch_norm_gradient(grad_y, x, gamma, 1e-5), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (4, 1, 1, 3)])
def test_closed_form_second_derivative_equals_autodiff_of_the_gradient_in_float64(shape):
    """The fused kernel's second derivative against a trusted twin.

    The twin is automatic differentiation of `batch_norm_gradient`'s plain
    ops (itself equal to autodiff of the forward pass, above). Activations
    far from zero mean make a wrong centring show.
    """
    def normal(seed, size, scale=1.0, shift=0.0):
        return tf.random.stateless_normal(size, seed=[seed, 1], dtype=tf.float64) * scale + shift

    x, grad_y, u = normal(1, shape, 2.0, 3.5), normal(2, shape), normal(3, shape)
    gamma, a, b = normal(4, shape[-1:]), normal(5, shape[-1:]), normal(6, shape[-1:])
    with tf.GradientTape() as tape:
        tape.watch([grad_y, x, gamma])
        first_order = batch_norm_gradient(grad_y, x, gamma, 1e-3)
    expected = tape.gradient(first_order, [grad_y, x, gamma], output_gradients=[u, a, b])
    mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
    got = batch_norm_second_derivative(grad_y, x, gamma, mean, variance, 1e-3,
                                       *first_order[1:], u, a, b)
    for value, want in zip(got, expected):
        assert value.dtype == tf.float64 and value.shape == want.shape
        np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-11)
    assert np.max(np.abs(expected[1])) > 1e-2  # the x term is not trivially zero


def test_fused_second_derivative_waits_for_the_outer_gradient():
    """Batch norm's second-order rebuild runs only once the outer backward pass reaches it.

    Left to TensorFlow's registered gradient, the rebuild reads only the
    activations, so the executor runs it during the inner step and holds
    its activation-sized results through the query pass (about 100 MiB of
    second-order MAML's peak at 84 px, docs/performance.md). Every op of the
    rebuild must depend on the outer gradient (here the `seed` argument).
    """
    def loss(x):
        gamma, beta = tf.constant([0.5, 1.0, 2.0, -1.0]), tf.zeros([4])
        return tf.reduce_sum(tf.sin(_project_batch_norm(True)(x, gamma, beta)))

    # The activation-sized ops (scalar shape arithmetic may run early).
    rebuild, early = second_order_ops(loss, [2, 3, 3, 4], SECOND_ORDER_SCOPE)
    assert len(rebuild) > 5, "the second derivative did not go through the deferred rebuild"
    assert not early, f"ops of the rebuild that can run before the outer gradient: {early[:5]}"


def _keras_style_batch_norm(x, gamma, beta):
    # Keras's stock layer on TensorFlow: the variance around a stop-gradient
    # mean. Right to first order, wrong to second (the bug this project avoids).
    mean = tf.reduce_mean(x, axis=[0, 1, 2])
    variance = tf.reduce_mean(tf.square(x - tf.stop_gradient(mean)), axis=[0, 1, 2])
    return (x - mean) * gamma * tf.math.rsqrt(variance + 1e-5) + beta


def _project_batch_norm(fused):
    def normalize(x, gamma, beta):
        statistics = tf.zeros([x.shape[-1]])
        return batch_normalize(x, gamma, beta, statistics, statistics + 1.0, 1e-5, fused=fused,
                               training=True)[0]
    return normalize


@pytest.mark.parametrize("name", ["fused", "plain", "keras_style"])
def test_second_derivative_against_central_differences_in_float32(name):
    """Hessian-vector products of batch norm equal central differences of its gradient.

    The fused kernel exists only for 16- and 32-bit floats, so this float32
    check (a smooth objective, 8 values per channel, where a wrong second
    derivative shows most) is its finite-difference proof. The same check
    tells Keras's stop-gradient-mean variance (wrong second derivative) apart
    by three orders of magnitude.
    """
    normalize = {"fused": _project_batch_norm(True), "plain": _project_batch_norm(False),
                 "keras_style": _keras_style_batch_norm}[name]
    x = tf.random.stateless_normal([2, 2, 2, 4], seed=[1, 2]) * 2.0 + 0.5
    point = [x, tf.constant([0.5, 1.0, 2.0, -1.0]), tf.constant([0.1, 0.0, -0.3, 1.0])]
    weights = tf.random.stateless_normal(x.shape, seed=[3, 4])
    direction = [tf.random.stateless_normal(value.shape, seed=[7, index])
                 for index, value in enumerate(point)]

    def gradient(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            objective = tf.reduce_sum(tf.sin(normalize(*values)) * weights)
        return tape.gradient(objective, values)

    with tf.GradientTape() as tape:
        tape.watch(point)
        along = tf.add_n([tf.reduce_sum(g * d) for g, d in zip(gradient(point), direction)])
    analytic = np.concatenate([np.ravel(v) for v in tape.gradient(along, point)])
    epsilon = 3e-3
    plus = gradient([p + epsilon * d for p, d in zip(point, direction)])
    minus = gradient([p - epsilon * d for p, d in zip(point, direction)])
    numeric = np.concatenate([np.ravel((a - b) / (2 * epsilon)) for a, b in zip(plus, minus)])
    error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    if name == "keras_style":
        assert error > 5e-3  # measured 1.7e-2: the check sees a wrong second derivative
    else:
        assert error < 2e-4  # measured 1.6e-5 (fused), 2.3e-5 (plain)


def test_meta_sgd_meta_gradient_through_fused_batch_norm_matches_plain():
    """Meta-SGD's second-order step runs the fused kernel, with the plain ops' values.

    Its learned learning rates are part of the meta-gradient, so this also
    checks the second-order terms that reach them through batch norm.
    """
    batch = make_episode_batch(1, tasks=2, size=16)
    learners = plain_and_fused(mg.MetaSGD, inner_steps=2)
    results = [tf.function(learner.compute_meta_gradients)(batch) for learner in learners]
    (loss_0, grads_0), (loss_1, grads_1) = results
    np.testing.assert_allclose(float(loss_1), float(loss_0), rtol=1e-5)
    assert len(grads_0) == len(learners[0].trainable_variables) > len(
        learners[0].network.trainable_variables)
    a = np.concatenate([np.ravel(g) for g in grads_0])
    b = np.concatenate([np.ravel(g) for g in grads_1])
    assert np.max(np.abs(a - b)) <= 1e-4 * np.max(np.abs(a))
