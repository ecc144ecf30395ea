"""A split read with another channel count: cross-domain testing.

A model meta-trained on grey Omniglot characters takes `[H, W, 1]` images;
tested on miniImageNet, the photographs must become grey, and a model
trained on miniImageNet needs Omniglot's strokes as RGB. `with_channels`
converts a split's images as they are loaded; its size is the reader's own
business (`mgaug_tf.data.load(..., image_size=...)`), so each dataset is
resized the way its reader resizes it.

Example:
    >>> from mgaug_tf.data.convert import with_channels
    >>> mini = mgaug_tf.data.load("miniimagenet", "/data/mini", "test", image_size=28)
    >>> with_channels(mini, 1).images(0).shape
    (600, 28, 28, 1)
"""

import numpy as np

from mgaug_tf.data.sources import ImageSource

# Pillow's convert() rule (the readers decode with it): grey -> RGB repeats the
# channel; RGB -> grey is the ITU-R 601-2 luma (19595 R + 38470 G + 7471 B + 32768) >> 16.
CHANNEL_RULE = "pillow_convert"
_MODES = {1: "L", 3: "RGB"}


def convert_image_channels(images, channels):
    """uint8 `[N, H, W, c]` (c 1 or 3) -> uint8 `[N, H, W, channels]`, by Pillow's `convert`.

    The rule the readers apply when they decode a file into their channel
    count (`mgaug_tf.data.sources.decode_image`): grey -> RGB repeats the
    grey level; RGB -> grey is ITU-R 601-2 luma in Pillow's fixed point,
    `(19595 R + 38470 G + 7471 B + 32768) >> 16` (also
    `mgaug_tf.export.convert_channels`, its twin in a SavedModel's graph).

    Raises:
        ValueError: `channels` or the images' channel count is not 1 or 3.
    """
    images = np.asarray(images)
    if (channels not in _MODES or images.ndim != 4 or images.shape[-1] not in _MODES
            or images.dtype != np.uint8):
        raise ValueError(f"channels must be 1 or 3 and images uint8 [N, H, W, 1 or 3]; got "
                         f"channels={channels!r}, images of shape {images.shape}.")
    if images.shape[-1] == channels:
        return images
    # Whole-batch arithmetic, not one Pillow call per image: this runs for every episode.
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    rgb = images.astype(np.uint32)
    luma = (19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + 32768) >> 16
    return luma.astype(np.uint8)[..., np.newaxis]


class ChannelSource(ImageSource):
    """The images of `base` (an `ImageSource`) with their channels converted as loaded.

    Conversion follows the reader's own stages (decode, resize, inversion):
    `convert_image_channels` on the uint8 images `base` loads.
    """

    def __init__(self, base, channels):
        self._base = base
        self._channels = channels
        self.image_shape = tuple(base.image_shape[:2]) + (channels,)
        self.invert = base.invert

    @property
    def preprocessing(self):
        """The base source's rule, then `{"convert_channels": {"from", "to", "rule"}}`."""
        return dict(self._base.preprocessing, convert_channels={
            "from": int(self._base.image_shape[2]), "to": self._channels,
            "rule": CHANNEL_RULE})

    def __len__(self):
        return len(self._base)

    def load(self, items):
        return convert_image_channels(self._base.load(items), self._channels)

    def check(self, items, decode=False, workers=None, progress=None):
        return self._base.check(items, decode, workers, progress)


def with_channels(split, channels):
    """`split` with its images converted to `channels` as they are loaded.

    Args:
        split: A `FewShotSplit` of images (from `mgaug_tf.data.load`).
        channels: 1 (grey) or 3 (RGB).

    Returns:
        `split` itself when it already has `channels`; otherwise a
        `FewShotSplit` with the same classes, items, categories and groups,
        whose `images()` and episodes are `convert_image_channels` of the
        original pixels, and whose `preprocessing` records the conversion.

    Raises:
        ValueError: `channels` is not 1 or 3, or the split holds no images.
    """
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}.")
    if not split.is_image:
        raise ValueError(f"with_channels converts images; {split.dataset} {split.split} holds "
                         f"examples of shape {split.example_shape}.")
    native = split.image_shape[2]
    if native == channels:
        return split
    # Loading and checking stay the reader's: ChannelSource wraps the split's own source.
    return split.wrap_source(
        lambda base: ChannelSource(base, channels),
        description=f"{split.description}; {_MODES[native]} converted to {_MODES[channels]} "
                    "(Pillow's convert)")
