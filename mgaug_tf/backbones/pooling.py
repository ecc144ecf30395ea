"""The last step of a backbone: feature map -> feature vector, and the input size it needs."""

import numbers

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


def is_integer(value):
    """Whether `value` is an integer (Python or NumPy), not a bool, float, string or sequence."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(argument, value, owner, minimum=1):
    """Returns `value` if it is an integer >= `minimum`: the library's one integer check.

    Refuses values of any other type (sequences, strings, floats such as
    8.5 or 8.0, bools) with one wording, "must be an integer >= minimum"
    (e.g. `n_way` of a learner, minimum 2; `filters`, minimum 1).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `argument` otherwise.
    """
    if not is_integer(value) or value < minimum:
        raise ArgumentError(argument, value, f"must be an integer >= {minimum}", owner=owner)
    return value


def check_n_way(n_way, owner, minimum=2):
    """`check_integer` for `n_way`: classes per episode (a learner needs at least 2).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `n_way`.
    """
    return check_integer("n_way", n_way, owner, minimum=minimum)


def check_positive_integers(argument, values, owner):
    """Returns `values` if it is a non-empty list or tuple of integers >= 1.

    A single integer is `check_integer`'s; here anything but a list or tuple
    of integers (a bare int, a string, floats, bools) is refused.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `argument` otherwise.
    """
    if (not isinstance(values, (list, tuple)) or not values
            or any(not is_integer(item) or item < 1 for item in values)):
        raise ArgumentError(argument, values,
                            "must be a non-empty sequence of integers >= 1", owner=owner)
    return values
