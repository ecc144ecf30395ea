"""Fixtures for the data tests: tiny identifiable splits (the shared real data: tests/conftest.py)."""

import numpy as np

from mgaug_tf.data import FewShotSplit


def identifiable_split(num_classes=6, images_per_class=8, size=8, sizes=None):
    """A split whose every pixel tells its image: R = class, G = index in class, B = 7.

    `sizes` optionally gives each class its own image count.
    """
    sizes = sizes or [images_per_class] * num_classes
    images, labels = [], []
    for label, count in enumerate(sizes):
        for index in range(count):
            images.append(np.broadcast_to(np.array([label, index, 7], np.uint8),
                                          (size, size, 3)))
            labels.append(label)
    return FewShotSplit.from_arrays(np.stack(images), np.array(labels))


def decode_ids(images):
    """float images `[..., H, W, 3]` of `identifiable_split` -> int `[..., 2]` (class, index)."""
    pixels = np.round(np.asarray(images)[..., 0, 0, :] * 255).astype(int)
    return pixels[..., :2]
