"""`reduction.channel_sum` against `tf.reduce_sum` over the same axes."""

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf.backbones import reduction


@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 5, 4, 3)])
def test_channel_sum_equals_reduce_sum_to_second_order_in_float64(shape):
    rng = np.random.default_rng(len(shape))
    inputs = tf.constant(rng.normal(size=shape))
    weights = tf.constant(rng.normal(size=shape[-1:]))
    probe = tf.constant(rng.normal(size=shape))

    def derivatives(reduce):
        with tf.GradientTape() as outer:
            outer.watch(inputs)
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                summed = reduce(inputs)
                loss = tf.reduce_sum(tf.square(summed) * weights)
            gradient = inner.gradient(loss, inputs)
            along = tf.reduce_sum(gradient * probe)
        return summed, gradient, outer.gradient(along, inputs)

    axes = list(range(len(shape) - 1))
    want = derivatives(lambda x: tf.reduce_sum(x, axis=axes))
    got = derivatives(reduction.channel_sum)
    for value, expected in zip(got, want):
        assert value.dtype == tf.float64 and value.shape == expected.shape
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(want[2])) > 0.1  # the second-order term is not zero


@pytest.mark.parametrize("shape", [[], [4, None]])
def test_channel_sum_refuses_inputs_without_a_known_channel_axis(shape):
    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def summed(values):
        return reduction.channel_sum(values)

    with pytest.raises(ValueError, match="known channel count, got shape"):
        summed.get_concrete_function()
