"""`convolution.Conv2D` and `bias_add`: Keras's values, and no fusable
`BiasAddGrad` in second-order steps."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.backbones import convolution
from tests.conftest import make_episode_batch, traced_bodies


def _derivatives(add, inputs, bias, probe):
    """`add`'s output, its gradients, and the gradient of <gradient, probe> (second order)."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([inputs, bias])
        with tf.GradientTape() as inner:
            inner.watch([inputs, bias])
            outputs = add(inputs, bias)
            loss = tf.reduce_sum(tf.square(outputs) * probe)
        grad_inputs, grad_bias = inner.gradient(loss, [inputs, bias])
        mixed = tf.reduce_sum(grad_inputs * probe) + tf.reduce_sum(grad_bias * tf.range(
            1.0, bias.shape[0] + 1.0, dtype=bias.dtype))
    return [outputs, grad_inputs, grad_bias] + outer.gradient(mixed, [inputs, bias])


@pytest.mark.parametrize("channels_last", [True, False])
def test_bias_add_matches_tensorflow_to_second_order_in_float64(channels_last):
    rng = np.random.default_rng(0)
    shape = [2, 5, 4, 3] if channels_last else [2, 3, 5, 4]
    inputs = tf.constant(rng.normal(size=shape))
    bias = tf.constant(rng.normal(size=[3]))
    probe = tf.constant(rng.normal(size=shape))
    data_format = "NHWC" if channels_last else "NCHW"
    want = _derivatives(lambda x, b: tf.nn.bias_add(x, b, data_format=data_format),
                        inputs, bias, probe)
    got = _derivatives(lambda x, b: convolution.bias_add(x, b, channels_last=channels_last),
                       inputs, bias, probe)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12, atol=1e-12)


def test_bias_add_sums_a_bfloat16_gradient_to_float32_accuracy():
    # 28,224 values near 3 per channel: a bfloat16 running sum stalls far
    # below the total (as the unfused BiasAddGrad kernel's does).
    rng = np.random.default_rng(0)
    upstream = tf.constant(rng.normal(3.0, 1.0, size=[4, 84, 84, 8]), tf.bfloat16)
    bias = tf.zeros([8], tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(bias)
        outputs = convolution.bias_add(tf.zeros_like(upstream), bias)
    grad = tape.gradient(outputs, bias, output_gradients=upstream)
    want = tf.cast(tf.reduce_sum(tf.cast(upstream, tf.float32), [0, 1, 2]), tf.bfloat16)
    assert grad.dtype == tf.bfloat16
    np.testing.assert_array_equal(grad.numpy(), want.numpy())


def test_conv2d_is_keras_conv2d_with_the_same_weights_config_and_values():
    keras.utils.set_random_seed(0)
    ours = convolution.Conv2D(4, 3, padding="same", name="conv0")
    theirs = keras.layers.Conv2D(4, 3, padding="same", name="conv0")
    images = tf.random.normal([2, 8, 8, 3], seed=1)
    ours.build(images.shape)
    theirs.build(images.shape)
    ours.bias.assign(tf.random.normal([4], seed=2))  # a zero bias would hide a wrong add
    theirs.set_weights(ours.get_weights())
    assert [v.path for v in ours.weights] == [v.path for v in theirs.weights]
    with tf.GradientTape(persistent=True) as tape:
        outputs = ours(images), theirs(images)
        losses = [tf.reduce_sum(tf.square(output)) for output in outputs]
    np.testing.assert_array_equal(outputs[0].numpy(), outputs[1].numpy())
    for got, want in zip(tape.gradient(losses[0], ours.trainable_variables),
                         tape.gradient(losses[1], theirs.trainable_variables)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    config = ours.get_config()
    assert config == theirs.get_config()
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ours))
    assert type(rebuilt) is convolution.Conv2D and rebuilt.get_config() == config


@pytest.mark.parametrize("learner_class", [mg.MAML, mg.MetaSGD])
def test_second_order_step_has_no_bias_gradient_that_onednn_could_fuse_wrongly(learner_class):
    """No `BiasAddGrad` reads a gradient that two filter gradients read.

    oneDNN's graph rewrite fuses a `BiasAddGrad` with a `Conv2DBackpropFilter`
    reading the same tensor; with two candidates (the inner step's and the
    outer pass's) it can pick the outer one and make a cycle. Keras's
    `Conv2D` gives three such bias gradients per loop body in this step;
    with them, Meta-SGD's step through the fused batch norm failed in both
    builds tried.
    """
    keras.utils.set_random_seed(0)
    learner = learner_class(mg.FewShotClassifier(mg.Conv4(filters=3), 3), 3, inner_steps=1,
                            augmentation=mg.MGAug("catfish", num_subnets=1),
                            bn_mode="inductive")
    learner.build((16, 16, 1))
    batch = make_episode_batch(3, tasks=2)
    concrete = tf.function(learner._meta_gradients_and_logs).get_concrete_function(batch)
    shared_gradients = 0
    for nodes in traced_bodies(concrete):
        readers = collections.Counter(node.input[2] for node in nodes
                                      if node.op == "Conv2DBackpropFilter")
        shared_gradients += sum(count > 1 for count in readers.values())
        shared = [node.name for node in nodes
                  if node.op == "BiasAddGrad" and readers[node.input[0]] > 1]
        assert not shared, shared
    # The hazard is there: the step is second order through the convolutions,
    # with gradients that two filter gradients read (three per loop body here).
    assert shared_gradients >= 3
