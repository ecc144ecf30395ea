"""Layer normalization with exact second derivatives, for second-order meta-learning."""

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MetaLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` whose variance is differentiable to every order.

    Keras computes the variance around `stop_gradient(mean)` on the
    TensorFlow backend (`keras.ops.moments`): first derivatives are right
    (the variance's derivative with respect to the mean is zero at the
    mean) but second derivatives are not, so second-order meta-gradients
    (MAML, ANIL, Meta-SGD) through Keras's layer are wrong, as through its
    `BatchNormalization`. This layer computes the same function with the
    mean's gradient kept; arguments, weights and saving are Keras's.
    `rms_scaling=True` (deprecated by Keras) runs Keras's own code, which
    takes no mean.

    Example:
        >>> x = keras.layers.Add()([attended, inputs])
        >>> x = MetaLayerNormalization()(x)  # in place of keras.layers.LayerNormalization
    """

    def call(self, inputs: Any) -> Any:
        """Normalises `inputs` over `axis` (any shape), then scales and offsets."""
        if self.rms_scaling:
            return super().call(inputs)
        original_dtype = inputs.dtype
        # At least float32, as Keras computes it (half-precision stability).
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        rank = len(x.shape)
        axes = sorted(axis % rank for axis in (
            [self.axis] if isinstance(self.axis, int) else self.axis))
        broadcast_shape = [1] * rank
        for axis in axes:
            broadcast_shape[axis] = x.shape[axis]

        def broadcast(weight):
            weight = ops.cast(weight, dtype)
            if len(weight.shape) != rank and axes != [rank - 1]:
                return ops.reshape(weight, broadcast_shape)
            return weight

        mean = ops.mean(x, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
        inverse = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            inverse = inverse * broadcast(self.gamma)
        offset = -mean * inverse
        if self.beta is not None:
            offset = offset + broadcast(self.beta)
        return ops.cast(x * inverse + offset, original_dtype)
