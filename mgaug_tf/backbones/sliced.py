"""Pieces of sliced width execution: a channel-masked network run on its kept channels.

A `random_width` sub-network multiplies each prunable convolution kernel by a
per-output-channel mask (`functional.apply_masks`). The same function can be
computed on sliced weights: the kept output channels of each kernel, and of
the next kernel only the input channels that are kept, so each convolution
costs about r^2 of the full one (r the keep ratio of both layers). What the
masked pass computes for a removed channel is reproduced exactly:

- Its convolution output is its bias alone (the kernel column is zero; biases
  are not masked), a constant map. Batch norm of a constant with batch
  statistics gives beta (the centred value is zero), with moving statistics
  `(bias - mean) * gamma / sqrt(variance + eps) + beta`; the activation and
  max-pool keep it a constant `v_c` per channel.
- The next convolution still reads that constant through its kernel's input
  channel c (only output channels are masked). Its contribution is
  position-dependent only at the zero-padded border, and equals one
  single-channel convolution of an all-ones map with the kernel
  `sum_c v_c * K[:, :, c, :]` (`constant_input_conv`): batch-independent and
  cheap.
- The last feature map is reassembled to all C channels (the constants in
  the removed channels' places, `assemble_channels`) before pooling, so the
  head (flatten with its resolution rules, or global average) and ProtoNet's
  distances see exactly the masked features.

Gradients with respect to the full weights come back through `tf.gather` as
scatters: removed entries get exactly zero, as `d(w * m)/dw = m` gives the
masked pass.
"""

import numpy as np
import tensorflow as tf


def channel_indices(mask, weight):
    """Kept and removed output channels of a per-output-channel mask.

    Args:
        mask: `None` (every channel kept) or a 0/1 mask of shape
            `[1, ..., 1, C]` for `weight` (what `strategies.random_width`
            draws). A mask known when traced (a constant) gives static
            indices, hence static shapes (e.g. for a static FLOP count); a
            mask drawn at run time gives index vectors of run-time length.
        weight: The masked kernel `[..., C]`.

    Returns:
        `(kept, removed)`: int32 index vectors, ascending.

    Raises:
        ValueError: `mask` is not a per-output-channel mask of `weight`.
    """
    channels = int(weight.shape[-1])
    if mask is None:
        return tf.range(channels), tf.zeros([0], tf.int32)
    rank = len(weight.shape)
    if list(mask.shape) != [1] * (rank - 1) + [channels]:
        raise ValueError(
            f"Sliced width execution needs per-output-channel masks of shape "
            f"{[1] * (rank - 1) + [channels]} (MGAug strategy 'random_width') for a kernel of "
            f"shape {list(weight.shape)}; got a mask of shape {list(mask.shape)}. Element "
            "masks (random_param, catfish, snip) run masked (width_execution='masked').")
    static = tf.get_static_value(mask)
    if static is not None:
        flat = np.reshape(static, [-1])
        return (tf.constant(np.flatnonzero(flat != 0), tf.int32),
                tf.constant(np.flatnonzero(flat == 0), tf.int32))
    keep = tf.not_equal(tf.reshape(mask, [-1]), 0)
    return (tf.cast(tf.where(keep)[:, 0], tf.int32),
            tf.cast(tf.where(tf.logical_not(keep))[:, 0], tf.int32))


def take(vector, indices):
    """`vector[indices]` whose gradient is a dense `[C]` tensor.

    `tf.gather` on axis 0 (and `tf.gather_nd` with one index column)
    differentiates to `IndexedSlices`, which the inner loop's arithmetic
    would densify with a warning; a gather on axis 1 differentiates to a
    dense tensor.
    """
    return tf.gather(vector[None], indices, axis=1)[0]


def constant_input_conv(size, kernel, values, strides, padding, dilations):
    """A convolution's output from input channels that are constant maps.

    Args:
        size: `(height, width)` of the input maps (ints or scalar tensors).
        kernel: `[kh, kw, Cd, n]`: the kernel's rows of the Cd constant input
            channels (Cd may be 0 and known only at run time).
        values: `[Cd]`, the constant of each input channel.
        strides, padding, dilations: Those of the convolution.

    Returns:
        `[1, h, w, n]`: what those channels add to every image's output
        (exact: one 1-channel convolution of an all-ones map with the kernel
        `sum_c values[c] * kernel[:, :, c, :]`; zero padding makes the border
        differ from the interior).
    """
    effective = tf.einsum("c,hwcn->hwn", tf.cast(values, kernel.dtype), kernel)[:, :, None, :]
    ones = tf.ones(tf.stack([1, size[0], size[1], 1]), kernel.dtype)
    return tf.nn.conv2d(ones, effective, strides=strides, padding=padding, dilations=dilations)


def _channel_order(kept, removed):
    """Where each channel sits in `concat([kept, removed])`: gathers it back into order."""
    return tf.argsort(tf.concat([kept, removed], 0))


def assemble_vector(kept_values, removed_values, kept, removed, channels):
    """`[C]` vector with `kept_values` at `kept` and `removed_values` at `removed`."""
    values = take(tf.concat([kept_values, removed_values], 0), _channel_order(kept, removed))
    return tf.ensure_shape(values, [channels])


def assemble_channels(x, values, kept, removed, channels):
    """A full-width feature map from the kept channels and the removed ones' constants.

    Args:
        x: `[B, H, W, len(kept)]`, the kept channels' maps.
        values: `[len(removed)]`, the removed channels' constants.
        kept, removed: The channel indices (a partition of `range(channels)`).
        channels: C.

    Returns:
        `[B, H, W, C]` in channel order, equal to the masked network's map.
    """
    shape = tf.shape(x)
    constants = tf.broadcast_to(tf.reshape(tf.cast(values, x.dtype), [1, 1, 1, -1]),
                                tf.concat([shape[:3], tf.shape(removed)], 0))
    full = tf.gather(tf.concat([x, constants], -1), _channel_order(kept, removed), axis=-1)
    return tf.ensure_shape(full, x.shape[:3].concatenate([channels]))
