"""`glyphs`: a built-in few-shot dataset generated on the fly, no files needed.

Each class is a random glyph: 2 to 4 pen strokes, each a cubic Bezier curve.
Each image of a class is that glyph redrawn with a jittered pen (control
points moved, stroke width changed) under a small random affine transform,
rendered antialiased as white strokes on black, like inverted Omniglot. A
class depends only on `(seed, class id)`, so any split can be generated alone
and the same seed always gives the same pixels. Train, val and test hold
different glyph classes.
"""

import threading

import numpy as np

from mgaug_tf.data.formats import SPLITS, Dataset, check_image_size
from mgaug_tf.data.sources import ImageSource
from mgaug_tf.data.split import FewShotSplit

DEFAULT_NUM_CLASSES = (1000, 200, 400)  # train, val, test
_CURVE_POINTS = 10  # points sampled along each Bezier stroke


def _bezier(control):
    """Points along cubic Bezier curves: control `[..., 4, 2]` -> `[..., T, 2]`."""
    t = np.linspace(0.0, 1.0, _CURVE_POINTS)[:, None]
    weights = np.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t ** 2 * (1 - t), t ** 3], 1)
    return np.einsum("tk...,...kd->...td", weights[..., 0], control)


def _prototype(rng):
    """Control points `[strokes, 4, 2]` of one glyph, in the unit square."""
    strokes = []
    for _ in range(rng.integers(2, 5)):
        point = rng.uniform(0.2, 0.8, 2)
        points = [point]
        for _ in range(3):
            angle = rng.uniform(0, 2 * np.pi)
            point = np.clip(point + rng.uniform(0.15, 0.35) * np.array(
                [np.cos(angle), np.sin(angle)]), 0.1, 0.9)
            points.append(point)
        strokes.append(points)
    return np.asarray(strokes)


def _render(control, widths, size):
    """Antialiased strokes: control `[n, strokes, 4, 2]`, widths `[n]` -> uint8 `[n, H, W]`."""
    curves = _bezier(control).astype(np.float32)  # [n, strokes, T, 2]
    starts = curves[:, :, :-1].reshape(len(control), -1, 1, 2)
    steps = curves[:, :, 1:].reshape(len(control), -1, 1, 2) - starts
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    grid_x = np.tile(centres, size)  # pixel centres, row-major
    grid_y = np.repeat(centres, size)
    # Distance from every pixel to every segment, x and y kept apart: summing
    # a trailing axis of 2 is several times slower in numpy.
    to_x = grid_x - starts[..., 0]
    to_y = grid_y - starts[..., 1]
    step_x, step_y = steps[..., 0], steps[..., 1]
    along = np.clip((to_x * step_x + to_y * step_y) /
                    np.maximum(step_x * step_x + step_y * step_y, 1e-12), 0, 1)
    off_x = to_x - along * step_x
    off_y = to_y - along * step_y
    distance = np.sqrt(np.min(off_x * off_x + off_y * off_y, axis=1))  # [n, H*W]
    # One pixel of linear falloff around the pen's edge.
    ink = np.clip(0.5 + (widths[:, None] - distance) * size, 0, 1)
    return np.round(ink * 255).astype(np.uint8).reshape(len(control), size, size)


def generate_class(seed, class_id, num_images, size):
    """The images of one glyph class: uint8 `[num_images, size, size, 1]`.

    Example:
        >>> generate_class(0, 7, 20, 28).shape
        (20, 28, 28, 1)
    """
    rng = np.random.default_rng([seed, class_id])
    prototype = _prototype(rng)
    control = prototype[None] + rng.normal(0, 0.03, (num_images,) + prototype.shape)
    angle = rng.normal(0, np.deg2rad(10), num_images)
    scale = 1 + rng.normal(0, 0.06, (num_images, 2))
    shear = rng.normal(0, 0.06, num_images)
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.stack([np.stack([cos * scale[:, 0], -sin + shear], -1),
                       np.stack([sin, cos * scale[:, 1]], -1)], 1)  # [n, 2, 2]
    shift = rng.normal(0, 0.05, (num_images, 1, 1, 2))
    control = np.einsum("nij,nskj->nski", matrix, control - 0.5) + 0.5 + shift
    widths = rng.uniform(0.03, 0.045, num_images)
    return _render(control, widths, size)[..., None]


class _GlyphSource(ImageSource):
    """Item `c * images_per_class + j` is image `j` of class `first_class + c`."""

    def __init__(self, seed, first_class, num_classes, images_per_class, size):
        self._seed = seed
        self._first = first_class
        self._per_class = images_per_class
        self._size = size
        self._classes = [None] * num_classes  # generated on first use
        self._lock = threading.Lock()
        self.image_shape = (size, size, 1)

    def __len__(self):
        return len(self._classes) * self._per_class

    def _class_images(self, index):
        if self._classes[index] is None:
            with self._lock:
                if self._classes[index] is None:
                    self._classes[index] = generate_class(
                        self._seed, self._first + index, self._per_class, self._size)
        return self._classes[index]

    def load(self, items):
        items = np.asarray(items, np.int64)
        images = np.empty((len(items),) + self.image_shape, np.uint8)
        for position, item in enumerate(items):
            images[position] = self._class_images(item // self._per_class)[
                item % self._per_class]
        return images


def load_glyphs(split, seed=0, image_size=28, images_per_class=20,
                num_classes=DEFAULT_NUM_CLASSES):
    """The built-in glyph dataset (use `mgaug_tf.data.load("glyphs", split=...)`).

    Args:
        split: `"train"`, `"val"` or `"test"` (canonical).
        seed: Selects the glyphs; the same seed gives the same pixels.
        image_size: Height and width (28, like Omniglot).
        images_per_class: Renderings per glyph.
        num_classes: `(train, val, test)` class counts.
    """
    image_size = check_image_size(image_size)
    if isinstance(images_per_class, bool) or not isinstance(images_per_class, int) \
            or images_per_class < 1:
        raise ValueError(f"images_per_class must be a positive int; got {images_per_class!r}.")
    try:
        counts = [int(count) for count in num_classes]
    except TypeError:
        counts = []
    if len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"num_classes must be three positive ints (train, val, test); got "
                         f"{num_classes!r}.")
    index = SPLITS.index(split)
    first, count = sum(counts[:index]), counts[index]
    source = _GlyphSource(int(seed), first, count, images_per_class, image_size)
    class_items = [np.arange(c * images_per_class, (c + 1) * images_per_class)
                   for c in range(count)]
    class_names = [f"glyph{first + c:05d}" for c in range(count)]
    return FewShotSplit("glyphs", split, class_names, class_items, source,
                        default_augment=False,
                        description=f"built-in glyphs (seed {seed}, {image_size}x{image_size})")


DATASET = Dataset(
    name="glyphs",
    aliases=("builtin",),
    formats=(),
    options={"seed": 0, "image_size": 28, "images_per_class": 20,
             "num_classes": DEFAULT_NUM_CLASSES},
    summary="built-in procedural glyphs, 1000/200/400 classes of 28x28 strokes, no files",
    needs_data_dir=False,
    native_size=28,  # drawn for 28 px, like Omniglot as used
)
