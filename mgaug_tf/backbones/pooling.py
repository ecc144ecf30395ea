"""The last step of a backbone: feature map -> feature vector."""

import keras

POOLINGS = ("flatten", "avg")


def feature_pooling(pooling, owner, dtype):
    """`Flatten` (`"flatten"`) or `GlobalAveragePooling2D` (`"avg"`) for `owner`.

    A flattened feature's length depends on the image size; an averaged one
    does not (needed when MGAug sub-networks see other resolutions).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"{owner} pooling must be one of {POOLINGS}, got {pooling!r}.")
    if pooling == "flatten":
        return keras.layers.Flatten(dtype=dtype)
    return keras.layers.GlobalAveragePooling2D(dtype=dtype)
