"""ReLU, leaky ReLU and max-pool: TensorFlow's values to second order, without zero tensors."""

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf.backbones import piecewise

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
