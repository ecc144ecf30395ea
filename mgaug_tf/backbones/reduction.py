"""Per-channel sums of channels-last activations, as a matrix-vector product."""

import tensorflow as tf


def channel_sum(inputs):
    """Sums `[..., C]` `inputs` over every axis but the last.

    The same values as `tf.reduce_sum(inputs, axis=[0, ..., rank - 2])`,
    computed as `[N, C]^T @ ones[N]`: TensorFlow's CPU `Sum` kernel reduces
    the outer axes of a channels-last tensor several times slower than a
    matrix-vector product reads it (docs/performance.md). The gradient is
    the incoming `[C]` gradient broadcast back to `inputs`' shape, so it is
    differentiable to every order.

    Args:
        inputs: `[..., C]` numeric tensor of known rank, 1 or more, and known
            channel count. bfloat16 is accumulated in float32 by the
            matrix kernels; callers sum float16 in float32 themselves.

    Returns:
        `[C]` tensor of `inputs`' dtype.

    Raises:
        ValueError: `inputs` has an unknown or zero rank, or an unknown
            channel count.
    """
    inputs = tf.convert_to_tensor(inputs)
    if inputs.shape.rank in (None, 0) or inputs.shape[-1] is None:
        raise ValueError("channel_sum needs inputs of known rank (1 or more) and a known "
                         f"channel count, got shape {inputs.shape}.")
    channels = inputs.shape[-1]

    @tf.custom_gradient
    def reduce(values):
        shape = tf.shape(values)
        matrix = tf.reshape(values, [-1, channels])
        ones = tf.ones(tf.shape(matrix)[:1], values.dtype)

        def gradient(grad_sum):
            return tf.broadcast_to(grad_sum, shape)

        return tf.linalg.matvec(matrix, ones, transpose_a=True), gradient

    return reduce(inputs)
