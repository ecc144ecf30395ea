"""Turning uint8 episode images into the float32 tensors the learners see.

Everything works on a whole episode `[M, H, W, C]` at once (per-image random
parameters, vectorised ops), and all randomness is stateless and seeded from
the episode, so a seed always yields the same augmented episodes.
"""

import dataclasses
import math

import tensorflow as tf

NORMALIZATIONS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """Training augmentation, and the evaluation preprocessing matching it.

    Attributes:
        random_resized_crop: Crop a random box (area fraction in
            `crop_scale`, aspect ratio in `crop_ratio`) and resize it to the
            output size. At evaluation the image is instead resized to
            `eval_resize_ratio` times the output size and centre-cropped.
        crop_scale: Range of the box area, as a fraction of the image.
        crop_ratio: Range of the box width / height.
        horizontal_flip: Flip half the images left-right.
        color_jitter: Strength `s` of brightness, contrast and saturation
            jitter: each factor is drawn from `[1 - s, 1 + s]`; 0 disables it.
        eval_resize_ratio: See `random_resized_crop` (1.15: 84 -> 97 -> 84).

    Example:
        >>> episode_dataset(split, 5, 1, 15, 4, augment=AugmentOptions(color_jitter=0.2))
        >>> episode_dataset(split, 5, 1, 15, 4, augment={"horizontal_flip": False})
    """

    random_resized_crop: bool = True
    crop_scale: tuple = (0.25, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    horizontal_flip: bool = True
    color_jitter: float = 0.4
    eval_resize_ratio: float = 1.15

    def __post_init__(self):
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"augment crop_scale must be 0 < low <= high <= 1; got "
                             f"{self.crop_scale}.")
        low, high = self.crop_ratio
        if not 0 < low <= high:
            raise ValueError(f"augment crop_ratio must be 0 < low <= high; got "
                             f"{self.crop_ratio}.")
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"augment color_jitter must be in [0, 1); got {self.color_jitter}.")
        if self.eval_resize_ratio < 1:
            raise ValueError(f"augment eval_resize_ratio must be >= 1; got "
                             f"{self.eval_resize_ratio}.")


def resolve_augment(augment, default_on):
    """Maps the `augment` argument of `episode_dataset` to options or None.

    Args:
        augment: `"auto"` (on when `default_on`), None/False (off), True
            (defaults), a dict of `AugmentOptions` fields, or `AugmentOptions`.
        default_on: The split's `default_augment`.
    """
    if isinstance(augment, str) and augment == "auto":
        return AugmentOptions() if default_on else None
    if augment is None or augment is False:
        return None
    if augment is True:
        return AugmentOptions()
    if isinstance(augment, AugmentOptions):
        return augment
    if isinstance(augment, dict):
        fields = {field.name for field in dataclasses.fields(AugmentOptions)}
        unknown = sorted(set(augment) - fields)
        if unknown:
            raise ValueError(f"Unknown augment option(s) {unknown}; use {sorted(fields)}.")
        return AugmentOptions(**augment)
    raise ValueError(f"augment must be 'auto', None, True, False, a dict or AugmentOptions; "
                     f"got {augment!r}.")


def resolve_normalize(normalize, channels):
    """Maps `normalize` (None, `"imagenet"`, or `(mean, std)`) to tensors or None."""
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize={normalize!r}; use None, "
                             f"{sorted(NORMALIZATIONS)} or (mean, std).")
        normalize = NORMALIZATIONS[normalize]
    try:
        mean, std = ([float(v) for v in values] for values in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"normalize must be None, a name or (mean, std) per channel; got "
                         f"{normalize!r}.") from None
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(f"normalize needs {channels} mean and {channels} positive std values "
                         f"for {channels}-channel images; got mean={mean}, std={std}.")
    return tf.constant(mean, tf.float32), tf.constant(std, tf.float32)


def _resize(images, size):
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    # Antialiasing only matters when shrinking, and costs several times more.
    shrinking = images.shape[1] > size[0] or images.shape[2] > size[1]
    return tf.image.resize(images, size, method="bilinear", antialias=shrinking)


def _centre_crop(images, size, resize_ratio):
    """Resize by `resize_ratio`, then crop the centre `size`: one bilinear sampling."""
    margin = (1 - 1 / resize_ratio) / 2
    count = tf.shape(images)[0]
    boxes = tf.tile([[margin, margin, 1 - margin, 1 - margin]], [count, 1])
    return tf.image.crop_and_resize(images, boxes, tf.range(count), size)


def _geometry(images, size, options, seed):
    """Random resized crop and horizontal flip as one `crop_and_resize`.

    A box whose left edge lies right of its right edge samples a mirrored
    crop, so flipping costs nothing extra.
    """
    count = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    if options.random_resized_crop:
        area = tf.random.stateless_uniform([count], seeds[0], *options.crop_scale)
        log_ratio = tf.random.stateless_uniform(
            [count], seeds[1], math.log(options.crop_ratio[0]), math.log(options.crop_ratio[1]))
        ratio = tf.exp(log_ratio)
        width = tf.minimum(tf.sqrt(area * ratio), 1.0)   # fractions of the image side
        height = tf.minimum(tf.sqrt(area / ratio), 1.0)
        top = tf.random.stateless_uniform([count], seeds[2]) * (1.0 - height)
        left = tf.random.stateless_uniform([count], seeds[3]) * (1.0 - width)
    else:
        images = _resize(images, size)  # antialiased, unlike crop_and_resize
        top = left = tf.zeros([count])
        height = width = tf.ones([count])
    right = left + width
    if options.horizontal_flip:
        flip = tf.random.stateless_uniform([count], seeds[4]) < 0.5
        left, right = tf.where(flip, right, left), tf.where(flip, left, right)
    boxes = tf.stack([top, left, top + height, right], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(count), size)


_LUMA = (0.2989, 0.5870, 0.1140)  # the weights of tf.image.rgb_to_grayscale


def _color_jitter(images, strength, seed):
    """Brightness, contrast and saturation jitter as one affine map per image.

    Brightness `b` scales the image; contrast `c` moves it towards its mean
    luma `m`; saturation `s` towards its own luma. Composed, that is
    `x -> s*c*b*x + (1-s)*c*b*luma(x) + (1-c)*b*m`, a 3x3 matrix and a bias
    per image: one pass over the pixels instead of one per step.
    """
    count = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    brightness, contrast, saturation = (
        tf.random.stateless_uniform([count], seeds[i], 1 - strength, 1 + strength)
        for i in range(3))
    if images.shape[-1] == 3:
        luma = tf.constant(_LUMA)
        mean = tf.linalg.matvec(tf.reduce_mean(images, axis=[1, 2]), luma)        # [count]
        scale = (contrast * brightness)[:, None, None]
        matrix = scale * (saturation[:, None, None] * tf.eye(3)
                          + (1 - saturation)[:, None, None] * tf.ones([3, 1]) * luma)
        images = tf.einsum("nhwc,ndc->nhwd", images, matrix)
    else:  # grayscale: no saturation
        mean = tf.reduce_mean(images, axis=[1, 2, 3])
        images = images * (contrast * brightness)[:, None, None, None]
    images += ((1 - contrast) * brightness * mean)[:, None, None, None]
    return tf.clip_by_value(images, 0.0, 1.0)


def preprocess(images, size, training, augment, normalization, seed):
    """uint8 `[M, H, W, C]` -> float32 `[M, size[0], size[1], C]`.

    Args:
        images: uint8 episode images.
        size: `(height, width)` of the output.
        training: Apply `augment` (random) rather than its evaluation form.
        augment: `AugmentOptions` or None (plain resize).
        normalization: `(mean, std)` tensors or None.
        seed: int `[2]` stateless seed of this episode.

    Returns:
        float32 images scaled to [0, 1], then normalised when asked.
    """
    images = tf.cast(images, tf.float32) / 255.0
    if augment is None:
        images = _resize(images, size)
    elif training:
        geometry_seed, color_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if augment.random_resized_crop or augment.horizontal_flip:
            images = _geometry(images, size, augment, geometry_seed)
        else:
            images = _resize(images, size)
        if augment.color_jitter:
            images = _color_jitter(images, augment.color_jitter, color_seed)
    elif augment.random_resized_crop:
        images = _centre_crop(images, size, augment.eval_resize_ratio)
    else:
        images = _resize(images, size)
    if normalization is not None:
        mean, std = normalization
        images = (images - mean) / std
    return images
