"""Bilinear interpolation with aligned corners, as linear maps (any dtype, any derivative order).

The reference MGAug code resizes with PyTorch's `interpolate(...,
mode="bilinear", align_corners=True)`: output pixel o of a size-`out` axis
samples input coordinate o * (in - 1) / (out - 1), so corner pixels are
copied exactly. Here that is one `[out, in]` weight matrix per axis: exact in
the input's dtype (float64 included, unlike TF's float32 ResizeBilinear
kernel), sizes may be tensors drawn at run time, and being linear it has
derivatives of every order (the flatten head's `"resize_features"` rule sits
inside MAML's second-order graph).
"""

import tensorflow as tf


def align_corners_matrix(out_size, in_size, dtype):
    """`[out_size, in_size]` bilinear weights with aligned corners.

    Args:
        out_size: Output length (Python int or scalar int tensor).
        in_size: Input length (Python int or scalar int tensor).
        dtype: Floating dtype of the weights.

    Returns:
        Row o holds 1 - f at floor(s) and f at floor(s) + 1, where
        s = o * (in_size - 1) / (out_size - 1) and f = s - floor(s)
        (s = 0 when out_size is 1).

    Example:
        >>> align_corners_matrix(3, 4, tf.float64)  # sources 0, 1.5, 3
        [[1, 0, 0, 0], [0, .5, .5, 0], [0, 0, 0, 1]]
    """
    out_size = tf.cast(out_size, tf.int32)
    in_size = tf.cast(in_size, tf.int32)
    scale = tf.cast(in_size - 1, dtype) / tf.cast(tf.maximum(out_size - 1, 1), dtype)
    source = tf.cast(tf.range(out_size), dtype) * scale
    low = tf.minimum(tf.cast(tf.floor(source), tf.int32), in_size - 1)
    high = tf.minimum(low + 1, in_size - 1)
    fraction = (source - tf.cast(low, dtype))[:, None]
    return (tf.one_hot(low, in_size, dtype=dtype) * (1 - fraction)
            + tf.one_hot(high, in_size, dtype=dtype) * fraction)


def resize_align_corners(images, height, width):
    """Resizes `[B, H, W, C]` to `[B, height, width, C]` bilinearly with aligned corners.

    Args:
        images: Floating-point tensor `[B, H, W, C]` (H, W may be dynamic).
        height, width: Output size (Python ints or scalar int tensors).

    Returns:
        The resized images, in the dtype of `images`.
    """
    shape = tf.shape(images)
    rows = align_corners_matrix(height, shape[1], images.dtype)
    columns = align_corners_matrix(width, shape[2], images.dtype)
    return tf.einsum("Hh,bhwc,Ww->bHWc", rows, images, columns)
