"""Batch normalization whose statistics are differentiable to every order."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MetaBatchNormalization(keras.layers.Layer):
    """Batch normalization safe for second-order meta-gradients.

    Keras's stock `BatchNormalization` on the TensorFlow backend computes the
    variance around `stop_gradient(mean)`, which silently breaks MAML's
    second-order meta-gradients. This layer computes the moments with plain
    differentiable ops, so gradients of gradients are exact.

    In training mode (`training=True`) it normalizes with the statistics of the
    current batch and updates the moving statistics; with `training=False` it
    uses the moving statistics (the "inductive" test mode).

    Args:
        momentum: Momentum of the moving statistics.
        epsilon: Added to the variance for numerical stability.
        **kwargs: Standard layer arguments (`name`, `dtype`).

    Example:
        >>> bn = MetaBatchNormalization()
        >>> y = bn(tf.random.normal([8, 5, 5, 3]), training=True)
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        # autocast=False: statistics and affine parameters stay float32 under
        # mixed precision.
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma",
                                     autocast=False)
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta",
                                    autocast=False)
        # `aggregation="mean"` keeps replicas' moving statistics in agreement
        # under tf.distribute instead of letting them drift apart.
        self.moving_mean = self.add_weight(
            shape=(channels,), initializer="zeros", trainable=False,
            name="moving_mean", aggregation="mean", autocast=False)
        self.moving_variance = self.add_weight(
            shape=(channels,), initializer="ones", trainable=False,
            name="moving_variance", aggregation="mean", autocast=False)

    def call(self, inputs, training=False):
        axes = list(range(len(inputs.shape) - 1))
        output_dtype = inputs.dtype
        if output_dtype in (tf.bfloat16, tf.float16):
            # Moments of 16-bit activations are too coarse (mixed precision):
            # normalize in float32 and hand back the compute dtype.
            inputs = tf.cast(inputs, tf.float32)
        if training:
            mean = tf.reduce_mean(inputs, axis=axes)
            variance = tf.reduce_mean(tf.square(inputs - mean), axis=axes)
            new_mean = tf.cast(tf.stop_gradient(mean), self.moving_mean.dtype)
            new_variance = tf.cast(tf.stop_gradient(variance), self.moving_variance.dtype)
            self.moving_mean.assign(
                self.momentum * self.moving_mean + (1.0 - self.momentum) * new_mean)
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1.0 - self.momentum) * new_variance)
        else:
            mean = tf.cast(self.moving_mean, inputs.dtype)
            variance = tf.cast(self.moving_variance, inputs.dtype)
        gamma, beta = tf.cast(self.gamma, inputs.dtype), tf.cast(self.beta, inputs.dtype)
        scale = gamma * tf.math.rsqrt(variance + self.epsilon)
        return tf.cast((inputs - mean) * scale + beta, output_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon)
        return config
