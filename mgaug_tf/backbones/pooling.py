"""The last step of a backbone: feature map -> feature vector, and the input size it needs."""

import keras

from mgaug_tf import choices
from mgaug_tf.errors import ArgumentError

POOLINGS = choices.POOLINGS


def feature_pooling(pooling, owner, dtype):
    """`Flatten` (`"flatten"`) or `GlobalAveragePooling2D` (`"avg"`) for `owner`.

    A flattened feature's length depends on the image size; an averaged one
    does not (needed when MGAug sub-networks see other resolutions).

    Raises:
        mgaug_tf.errors.ArgumentError: `pooling` is not one of `POOLINGS`.
    """
    if pooling not in POOLINGS:
        raise ArgumentError("pooling", pooling, f"must be one of {POOLINGS}", owner=owner)
    if pooling == "flatten":
        return keras.layers.Flatten(dtype=dtype)
    return keras.layers.GlobalAveragePooling2D(dtype=dtype)


def check_input_size(input_shape, min_size, owner):
    """Refuses `[B, H, W, C]` inputs whose known H or W is below `min_size`.

    A backbone's 2x2 poolings floor each side, so a smaller image leaves an
    empty feature map.

    Raises:
        mgaug_tf.errors.ArgumentError: `input_shape` has H or W below `min_size`.
    """
    shape = tuple(input_shape)
    sides = [size for size in shape[1:3] if size is not None]
    if len(shape) != 4 or any(int(size) < min_size for size in sides):
        raise ArgumentError("input_shape", shape,
                            f"must be (batch, height, width, channels) with height and width "
                            f"of at least {min_size} px (smaller images leave an empty feature "
                            "map)", owner=owner)
