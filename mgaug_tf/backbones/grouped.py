"""Layers of G independent networks run as one: the learners' vectorized path.

The G copies (the tasks of a meta-batch, or a task's MGAug sub-networks)
are stacked along the channel axis: activations `[B, H, W, G*C]`, kernels
`[kh, kw, C_in, G*C_out]`, so each convolution is one grouped convolution
(copy g only sees its own input channels), and per-channel batch norm,
ReLU and pooling treat every copy separately by construction.
"""

import tensorflow as tf

from mgaug_tf.backbones.batch_norm import fused_batch_norm, use_fused


def fold_groups(x):
    """`[G, B, H, W, C]` -> `[B, H, W, G*C]` (copy-major channels)."""
    groups, batch, height, width, channels = tf.TensorShape(x.shape).as_list()
    x = tf.transpose(x, [1, 2, 3, 0, 4])
    return tf.reshape(x, [batch, height, width, groups * channels])


def unfold_groups(x, groups):
    """`[B, H, W, G*C]` -> `[G, B, H, W, C]`."""
    batch, height, width, channels = tf.TensorShape(x.shape).as_list()
    x = tf.reshape(x, [batch, height, width, groups, channels // groups])
    return tf.transpose(x, [3, 0, 1, 2, 4])


def conv2d(x, kernel, bias, compute_dtype, implementation="auto"):
    """Same-padded grouped convolution of folded `x` with `kernel [G, kh, kw, Cin, Cout]`.

    Args:
        x: Folded activations `[B, H, W, G*Cin]`.
        kernel: Per-copy kernels `[G, kh, kw, Cin, Cout]`.
        bias: Per-copy biases `[G, Cout]`.
        compute_dtype: The network's compute dtype.
        implementation: `"grouped"` (one grouped `conv2d`), `"split"` (one
            `conv2d` per copy on its channel slice, then concatenated: the same
            function, for dtypes whose grouped-convolution gradients TensorFlow
            lacks on CPU, i.e. float64) or `"auto"` (grouped unless float64).

    Returns:
        `[B, H, W, G*Cout]`.
    """
    groups, height, width, channels_in, channels_out = tf.TensorShape(kernel.shape).as_list()
    kernel = tf.cast(kernel, compute_dtype)
    if implementation == "auto":
        implementation = "split" if kernel.dtype == tf.float64 else "grouped"
    if implementation == "split":
        slices = tf.split(x, groups, axis=-1)
        y = tf.concat([tf.nn.conv2d(slices[g], kernel[g], strides=1, padding="SAME")
                       for g in range(groups)], axis=-1)
    elif implementation == "grouped":
        kernel = tf.transpose(kernel, [1, 2, 3, 0, 4])
        kernel = tf.reshape(kernel, [height, width, channels_in, groups * channels_out])
        # The input depth G*Cin over the kernel's Cin makes this a G-group convolution.
        y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
    else:
        raise ValueError(f"implementation must be 'auto', 'grouped' or 'split', got "
                         f"{implementation!r}.")
    return y + tf.reshape(tf.cast(bias, compute_dtype), [groups * channels_out])


def batch_norm(x, gamma, beta, epsilon, fused="auto"):
    """`MetaBatchNormalization` with batch statistics, per copy and channel.

    Moments in float32 under mixed precision, fully differentiable (no stop
    gradient around the mean), exactly like the per-task layer; `fused` as
    there (`"auto"`: the fused kernel for 16-bit `x`).
    """
    if use_fused(fused, x.dtype, len(x.shape)):
        return fused_batch_norm(x, tf.reshape(gamma, [-1]), tf.reshape(beta, [-1]), epsilon)[0]
    output_dtype = x.dtype
    if output_dtype in (tf.bfloat16, tf.float16):
        x = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x, axis=[0, 1, 2])
    variance = tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2])
    gamma = tf.reshape(tf.cast(gamma, x.dtype), [-1])
    beta = tf.reshape(tf.cast(beta, x.dtype), [-1])
    scale = gamma * tf.math.rsqrt(variance + epsilon)
    return tf.cast((x - mean) * scale + beta, output_dtype)


def pool_features(x, groups, pooling):
    """Folded feature maps -> per-copy feature vectors `[G, B, D]`.

    `"flatten"` keeps Keras's `Flatten` order (height, width, channel);
    `"avg"` is global average pooling.
    """
    x = unfold_groups(x, groups)
    if pooling == "avg":
        return tf.reduce_mean(x, axis=[2, 3])
    group_count, batch, height, width, channels = tf.TensorShape(x.shape).as_list()
    return tf.reshape(x, [group_count, batch, height * width * channels])
