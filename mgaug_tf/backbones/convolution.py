"""A Keras `Conv2D` whose bias gradient is a plain sum, for graphs differentiated twice.

On CPU, TensorFlow's oneDNN graph rewrite fuses each `BiasAddGrad` with a
`Conv2DBackpropFilter` that reads the same incoming gradient, into one
kernel that returns both. In a second-order graph (MAML's outer pass through
the inner loop's gradients) two filter gradients read that tensor: the inner
step's, and the outer pass's derivative of the inner step's input gradient.
The rewrite does not always pick the inner step's: when it picks the outer
pass's, the inner bias gradient depends on the outer pass, which depends on
it, and the step fails with "InvalidArgumentError: N nodes in a cycle", in
some processes and not in others. Here the bias gradient is a plain sum
over every axis but the channels' (`reduction.channel_sum`), which the
rewrite leaves alone: the same values, and no `BiasAddGrad` to fuse. The
forward `BiasAdd` stays, and still fuses with its convolution.
"""

import keras
import tensorflow as tf

from mgaug_tf.backbones import reduction


def bias_add(inputs, bias, channels_last=True):
    """`tf.nn.bias_add` whose gradient for `bias` is a plain sum, not `BiasAddGrad`.

    The sum is `reduction.channel_sum` (a `MatMul`) for channels-last
    inputs, as fast as `BiasAddGrad` on CPU, else a `Sum`. Differentiable
    to every order (the gradient is linear in the incoming gradient). A
    float16 gradient is summed in float32 (a loss-scaled float16 sum of a
    whole feature map loses precision). `MatMul` and `Sum` accumulate
    bfloat16 in float32 and the unfused `BiasAddGrad` CPU kernel does not,
    so bfloat16 bias gradients can differ from `BiasAddGrad`'s.

    Args:
        inputs: `[B, ..., C]` float tensor (`[B, C, ...]` if not
            `channels_last`) of known rank, 2 or more.
        bias: `[C]` tensor of the same dtype.
        channels_last: Whether the channels are the last axis (`NHWC`) or the
            second (`NCHW`).

    Returns:
        `inputs + bias` broadcast over the channel axis, same shape and dtype.

    Raises:
        ValueError: `inputs` has an unknown rank.
        tf.errors.InvalidArgumentError: `bias` does not have one entry per
            channel (from `tf.nn.bias_add`).
    """
    data_format = "NHWC" if channels_last else "NCHW"
    inputs = tf.convert_to_tensor(inputs)
    rank = inputs.shape.rank
    if rank is None:
        raise ValueError("bias_add needs inputs of known rank, got an unknown rank.")
    channel_axis = rank - 1 if channels_last else 1
    axes = [axis for axis in range(rank) if axis != channel_axis]

    @tf.custom_gradient
    def forward(features, offsets):
        def backward(grad_outputs):
            summed = grad_outputs
            if grad_outputs.dtype == tf.float16:
                summed = tf.cast(grad_outputs, tf.float32)
            if channels_last:
                summed = reduction.channel_sum(summed)
            else:
                summed = tf.reduce_sum(summed, axis=axes)
            return grad_outputs, tf.cast(summed, offsets.dtype)

        return tf.nn.bias_add(features, offsets, data_format=data_format), backward

    # Read a variable outside `forward`: `tf.custom_gradient` would otherwise
    # require its gradient function to take a `variables` argument.
    return forward(inputs, tf.convert_to_tensor(bias))


@keras.saving.register_keras_serializable(package="mgaug_tf")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with its bias added by `bias_add`.

    The same arguments, weights, configuration and float32 / float64 values
    as Keras's layer; only the bias gradient's op differs (see the module
    docstring: a second-order step through Keras's layer can fail at random
    on CPU, and `bias_add` for bfloat16). Raises what Keras's layer raises.

    Example:
        >>> conv = Conv2D(64, 3, padding="same", name="conv0")
        >>> conv(tf.zeros([2, 84, 84, 3])).shape  # [2, 84, 84, 64]
    """

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = bias_add(outputs, self.bias,
                               channels_last=self.data_format == "channels_last")
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
