"""ReLU, leaky ReLU and max-pool: TensorFlow's values to second order, without zero tensors."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops import gen_nn_ops  # TensorFlow's kernel, the twin

from mgaug_tf.backbones import piecewise
from tests.conftest import second_order_ops

OPS = {
    "relu": (piecewise.relu, tf.nn.relu),
    "leaky_relu": (lambda x: piecewise.leaky_relu(x, 0.1), lambda x: tf.nn.leaky_relu(x, 0.1)),
    "max_pool": (piecewise.max_pool, lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID")),
}


def _hessian_vector_product(function, x, weights, direction):
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            # Squared, so the second derivative has a nonzero part.
            objective = tf.reduce_sum(tf.square(function(x)) * weights)
        gradient = inner.gradient(objective, x)
        along = tf.reduce_sum(gradient * direction)
    return function(x), gradient, outer.gradient(along, x)


@pytest.mark.parametrize("name", sorted(OPS))
def test_values_and_two_derivatives_equal_tensorflows(name):
    ours, theirs = OPS[name]
    x = tf.random.stateless_normal([2, 6, 6, 3], seed=[1, 2], dtype=tf.float64)
    # Ties inside pooling windows (a flat image region): both route to the first maximum.
    x = tf.concat([x[:1], tf.ones_like(x[1:])], axis=0)
    weights = tf.random.stateless_normal(ours(x).shape, seed=[3, 4], dtype=tf.float64)
    direction = tf.random.stateless_normal(x.shape, seed=[5, 6], dtype=tf.float64)
    for got, want in zip(_hessian_vector_product(ours, x, weights, direction),
                         _hessian_vector_product(theirs, x, weights, direction)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_second_derivative_adds_no_zero_tensors(name):
    """TensorFlow's registered second derivatives add `zeros_like(activation)` terms.

    The executor computes them during the inner step and holds them until
    the outer backward pass adds them in; `piecewise` leaves them out.
    """
    ours, theirs = OPS[name]
    x_spec = tf.TensorSpec([2, 24, 24, 3], tf.float32)  # > 1000 values: zeros are Fill ops

    def used_zero_tensors(function):
        pooled = function(tf.zeros(x_spec.shape)).shape
        traced = tf.function(_hessian_vector_product).get_concrete_function(
            function, x_spec, tf.TensorSpec(pooled, tf.float32), x_spec)
        return [op.name for op in traced.graph.get_operations()
                if op.type in ("Fill", "ZerosLike") and op.outputs[0].consumers()]

    assert used_zero_tensors(theirs), "TensorFlow's gradient adds no zeros now: drop piecewise?"
    assert not used_zero_tensors(ours)


# (input shape, pool size, strides, padding): tiled windows of a power-of-two
# area (the second derivative from MaxPoolGrad, odd sides cropped), and
# others (TensorFlow's MaxPoolGradGrad).
POOLINGS = {
    "tiled_odd_sides": ([2, 7, 9, 3], 2, None, "VALID"),
    "tiled_4x2": ([2, 9, 6, 3], (4, 2), None, "VALID"),
    "tiled_2x3": ([2, 6, 9, 3], (2, 3), None, "VALID"),
    "overlapping": ([2, 7, 7, 3], 3, 2, "VALID"),
    "overlapping_2x2": ([2, 7, 7, 3], 2, 1, "VALID"),
    "same_padding": ([2, 7, 7, 3], 2, None, "SAME"),
}


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("name", sorted(POOLINGS))
def test_max_pool_second_derivative_equals_tensorflows(name, dtype):
    """Bit for bit, ties included, in a traced graph (oneDNN's kernels in float32)."""
    shape, size, strides, padding = POOLINGS[name]
    ours = lambda x: piecewise.max_pool(x, size, strides, padding)  # noqa: E731
    theirs = lambda x: tf.nn.max_pool2d(x, size, strides or size, padding)  # noqa: E731
    x = tf.random.stateless_normal(shape, seed=[1, 2], dtype=dtype)
    # Ties: a flat image and values on a coarse grid.
    x = tf.concat([tf.round(x[:1] * 2.0), tf.ones_like(x[1:])], axis=0)
    weights = tf.random.stateless_normal(ours(x).shape, seed=[3, 4], dtype=dtype)
    direction = tf.random.stateless_normal(shape, seed=[5, 6], dtype=dtype)
    traced = tf.function(_hessian_vector_product)
    for got, want in zip(traced(ours, x, weights, direction),
                         traced(theirs, x, weights, direction)):
        np.testing.assert_array_equal(got, want)


# The smallest magnitude compared per dtype: the kernel copies values, while
# a quarter of a float32 or bfloat16 value under 2^-124 is subnormal, which
# TensorFlow's CPU threads flush to zero (float16 is averaged in float32).
SMALLEST = {tf.float16: 2.0 ** -24, tf.bfloat16: 2.0 ** -120, tf.float32: 2.0 ** -120,
            tf.float64: 2.0 ** -1000}


@pytest.mark.parametrize("dtype", sorted(SMALLEST, key=lambda dtype: dtype.name))
def test_tiled_second_derivative_equals_max_pool_grad_grad_over_the_dtypes_range(dtype):
    """Ties, odd sides, tiny and huge outer gradients, infinities off the maxima, in a graph.

    A loss-scaled float16 outer gradient can overflow where the pool took
    nothing, and be far below float16's normal range elsewhere.
    """
    ksize = [1, 2, 2, 1]
    features = tf.round(tf.random.stateless_normal([3, 9, 7, 4], seed=[7, 8]) * 2.0)
    features = tf.cast(tf.nn.relu(features), dtype)  # many tied zeros, as after Conv4's ReLU
    pooled = tf.nn.max_pool2d(features, 2, 2, "VALID")
    largest = float(dtype.max) ** 0.5
    exponents = tf.random.stateless_uniform(features.shape, seed=[9, 10], minval=np.log2(
        SMALLEST[dtype]), maxval=np.log2(largest), dtype=tf.float64)
    signs = tf.sign(tf.random.stateless_normal(features.shape, seed=[11, 12], dtype=tf.float64))
    grad_grad = tf.cast(signs * 2.0 ** exponents, dtype)
    off_maxima = gen_nn_ops.max_pool_grad(features, pooled, tf.ones_like(pooled), ksize, ksize,
                                          "VALID") == 0
    overflow = tf.random.stateless_uniform(features.shape, seed=[13, 14]) < 0.1
    grad_grad = tf.where(off_maxima & overflow, tf.cast(float("inf"), dtype), grad_grad)

    @tf.function
    def both(features, pooled, grad_grad):
        return (piecewise._pooled_at_maxima(  # pylint: disable=protected-access
            features, pooled, grad_grad, ksize),
            gen_nn_ops.max_pool_grad_grad(features, pooled, grad_grad, ksize, ksize, "VALID"))

    got, want = both(features, pooled, grad_grad)
    assert np.isfinite(np.asarray(tf.cast(want, tf.float64))).all()
    np.testing.assert_array_equal(tf.cast(got, tf.float64), tf.cast(want, tf.float64))


def test_max_pool_second_derivative_waits_for_the_outer_gradient():
    """The one-hot map of the maxima is built only once the outer backward pass reaches it.

    It reads only the activations, so without a dependency on the outer
    gradient the executor would build it during the inner step and hold it
    (an activation per layer and inner step) through the query pass.
    """
    second_order, early = second_order_ops(
        lambda x: tf.reduce_sum(tf.square(piecewise.max_pool(x, 2))), [2, 8, 8, 3],
        piecewise.MAX_POOL_SECOND_ORDER_SCOPE)
    assert {op.type for op in second_order} >= {"MaxPoolGrad", "AvgPool"}
    assert not early, f"second-derivative ops that can run before the outer gradient: {early}"


def test_layers_shapes_and_config():
    pool = piecewise.MaxPooling2D(2)
    assert pool.compute_output_shape((None, 85, 84, 64)) == (None, 42, 42, 64)
    assert tuple(pool(tf.zeros([1, 85, 84, 64])).shape) == (1, 42, 42, 64)
    same = piecewise.MaxPooling2D.from_config(
        {**piecewise.MaxPooling2D(3, padding="same").get_config()})
    assert same.pool_size == (3, 3) and same.compute_output_shape((1, 10, 9, 2)) == (1, 4, 3, 2)
    assert tuple(same(tf.zeros([1, 10, 9, 2])).shape) == (1, 4, 3, 2)
    np.testing.assert_array_equal(piecewise.ReLU()(tf.constant([-1.0, 2.0])), [0.0, 2.0])
    with pytest.raises(ValueError, match="padding"):
        piecewise.MaxPooling2D(2, padding="full")
