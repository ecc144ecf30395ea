"""`FewShotSplit`: the classes of one split and a way to read their images."""

import numpy as np

from mgaug_tf.data.errors import CorruptDataError
from mgaug_tf.data.sources import ArraySource


class FewShotSplit:
    """The classes of one dataset split and their images.

    Attributes:
        dataset: Canonical dataset name, e.g. `"miniimagenet"`.
        split: `"train"`, `"val"` or `"test"`.
        class_names: One name per class (a WordNet id, `Alphabet/characterNN`...).
        num_classes: `len(class_names)`.
        image_shape: `(height, width, channels)` of every image (RGB: 3,
            Omniglot and glyphs: 1).
        category_labels: int array `[num_classes]`, the category (tieredImageNet
            category, Omniglot alphabet, CIFAR-100 superclass) of each class,
            or `None` when the format has none.
        category_names: Names of the categories, or `None`.
        class_groups: int array `[num_classes]`: classes with the same value
            are views of one source class (Omniglot: the 4 rotations of one
            character). Without views, each class is its own group.
        default_augment: Whether `episode_dataset(augment="auto")` augments
            training episodes (natural images yes, strokes no).
        description: The files and format the split was read from.

    Example:
        >>> split = mgaug_tf.data.load("miniimagenet", "/data/mini", "val")
        >>> split.num_classes, split.images(0).shape
        (16, (600, 84, 84, 3))
    """

    def __init__(self, dataset, split, class_names, class_items, source, category_labels=None,
                 category_names=None, default_augment=True, description="", class_groups=None):
        if len(class_names) != len(class_items):
            raise ValueError(f"{len(class_names)} class names for {len(class_items)} classes.")
        self.dataset = dataset
        self.split = split
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self._class_items = [np.asarray(items, np.int64) for items in class_items]
        self._source = source
        self.image_shape = tuple(source.image_shape)
        self.category_labels = (None if category_labels is None
                                else np.asarray(category_labels, np.int64))
        self.category_names = None if category_names is None else tuple(category_names)
        self.default_augment = default_augment
        self.description = description
        self.class_groups = (np.arange(self.num_classes, dtype=np.int64) if class_groups is None
                             else np.asarray(class_groups, np.int64))
        if self.class_groups.shape != (self.num_classes,):
            raise ValueError(f"class_groups needs one entry per class ({self.num_classes}); got "
                             f"shape {self.class_groups.shape}.")

    @classmethod
    def from_arrays(cls, images, labels, class_names=None, dataset="arrays", split="train",
                    default_augment=False):
        """Builds a split from in-memory images and integer labels.

        Args:
            images: uint8 `[N, H, W, C]` (or `[N, H, W]`), RGB or grayscale.
            labels: int `[N]`; any values, classes are numbered in sorted order.
            class_names: Optional names, one per distinct label (sorted order).
            dataset, split: Names used in messages.
            default_augment: See the class attributes.

        Example:
            >>> split = FewShotSplit.from_arrays(images, labels)
            >>> split.num_classes
            20
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 [N, H, W(, C)]; got {images.dtype} "
                             f"{images.shape}.")
        label_values, class_items = group_by_label(labels, len(images), "labels")
        if class_names is None:
            class_names = [str(value) for value in label_values]
        return cls(dataset, split, class_names, class_items, ArraySource(images),
                   default_augment=default_augment, description="in-memory arrays")

    @property
    def num_source_classes(self):
        """Distinct source classes (Omniglot: characters, before rotation)."""
        return len(np.unique(self.class_groups))

    def sample_source_classes(self, count, seed):
        """A split with `count` source classes drawn at random, all their views kept.

        For task-scarcity studies: e.g. 100 of Omniglot's 1,028 training
        characters, each still in its 4 rotations (400 classes). The draw is
        uniform without replacement, from `numpy.random.default_rng(seed)`,
        so a seed names the subset on every machine; kept classes stay in
        their original order.

        Args:
            count: Source classes to keep, `1 <= count <= num_source_classes`.
            seed: Integer seed of the draw.

        Returns:
            A new `FewShotSplit` sharing this one's image source.

        Raises:
            ValueError: `count` out of range.

        Example:
            >>> train = mgaug_tf.data.load("omniglot", "/data/omniglot", "train")
            >>> train.sample_source_classes(100, seed=0).num_classes
            400
        """
        groups = np.unique(self.class_groups)
        if not 1 <= int(count) <= len(groups):
            raise ValueError(f"Cannot keep {count} source classes of {self.dataset} "
                             f"{self.split}: it has {len(groups)} (expected 1 to {len(groups)}).")
        chosen = np.random.default_rng(int(seed)).choice(groups, size=int(count), replace=False)
        keep = np.flatnonzero(np.isin(self.class_groups, chosen))
        return FewShotSplit(
            self.dataset, self.split, [self.class_names[i] for i in keep],
            [self._class_items[i] for i in keep], self._source,
            category_labels=None if self.category_labels is None else self.category_labels[keep],
            category_names=self.category_names, default_augment=self.default_augment,
            description=f"{self.description}; {int(count)} of {len(groups)} source classes "
                        f"(seed {int(seed)})",
            class_groups=self.class_groups[keep])

    def num_images(self, class_index):
        """Number of images of class `class_index`."""
        return len(self._class_items[self._check_index(class_index)])

    @property
    def class_sizes(self):
        """int array `[num_classes]`: the number of images of each class."""
        return np.asarray([len(items) for items in self._class_items], np.int64)

    def images(self, class_index):
        """All images of one class, exactly as the episode pipeline reads them.

        Args:
            class_index: In `[0, num_classes)`.

        Returns:
            uint8 array `[num_images(class_index), H, W, C]`, RGB (C=3) or
            grayscale (C=1), before augmentation and normalisation.
        """
        return self._source.load(self._class_items[self._check_index(class_index)])

    def load_items(self, items):
        """uint8 images `[len(items), H, W, C]` for flat item ids (see `item_table`)."""
        return self._source.load(items)

    @property
    def preprocessing(self):
        """How the reader turns a file into this split's uint8 pixels (JSON-ready dict).

        See `mgaug_tf.data.sources.ImageSource.preprocessing`; exported
        SavedModels apply the same rule to raw images.
        """
        return self._source.preprocessing

    def check_images(self, decode=False, workers=None, progress=None):
        """Finds every unreadable image of the split, before any training.

        Args:
            decode: False: a quick check that decodes nothing
                (each encoded image must be non-empty and start
                with a JPEG/PNG signature; catches empty and non-image files,
                not truncated ones). True: decode every image as training
                would, in parallel threads (minutes for a large split).
            workers: Decoding threads (default: the CPU count).
            progress: Optional `callback(images checked so far)`.

        Returns:
            One line per unreadable image, naming its file (or item and
            file); empty when all are readable. Splits held as arrays have
            nothing to check.

        Example:
            >>> split = mgaug_tf.data.load("miniimagenet", "/data/mini", "train")
            >>> split.check_images(decode=True)
            ['Cannot decode image /data/mini/images/n0153282900000005.jpg (0 bytes): ...']
        """
        items, _ = self.item_table()
        return self._source.check(items, decode=decode, workers=workers, progress=progress)

    def item_table(self):
        """The episode sampler's view: `(items, offsets)`.

        Returns:
            `items`: int64, the item ids of class 0, then class 1, ...;
            `offsets`: int64 `[num_classes]`, where each class starts in `items`.
        """
        sizes = self.class_sizes
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        items = (np.concatenate(self._class_items) if self._class_items
                 else np.zeros(0, np.int64))
        return items, offsets

    def _check_index(self, class_index):
        if not 0 <= class_index < self.num_classes:
            raise IndexError(f"class_index {class_index} is out of range: {self.dataset} "
                             f"{self.split} has {self.num_classes} classes.")
        return int(class_index)

    def __repr__(self):
        sizes = self.class_sizes
        return (f"FewShotSplit({self.dataset!r}, split={self.split!r}, "
                f"num_classes={self.num_classes}, images={int(sizes.sum())}, "
                f"image_shape={self.image_shape}, from={self.description!r})")


def group_by_label(labels, num_images, what):
    """Groups item ids by label.

    Args:
        labels: int `[N]` label per item (any values, e.g. global labels offset
            after another split's).
        num_images: The number of images the labels must describe.
        what: The labels' file, named in the error.

    Returns:
        `(label_values, class_items)`: the sorted distinct labels and, for
        each, the item ids carrying it in their original order. Class `i` is
        `label_values[i]`: labels are re-indexed to `0..num_classes-1`.

    Raises:
        CorruptDataError: `len(labels) != num_images`.
    """
    labels = np.asarray(labels).reshape(-1)
    if num_images == 0:
        raise CorruptDataError(f"{what} describes no images; the split is empty.")
    if len(labels) != num_images:
        raise CorruptDataError(
            f"{what} has {len(labels)} labels for {num_images} images; each image needs one "
            "label. The files belong to different copies or splits.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise CorruptDataError(f"{what}: labels must be integers; got dtype {labels.dtype}.")
    order = np.argsort(labels, kind="stable")
    label_values, starts = np.unique(labels[order], return_index=True)
    return label_values, np.split(order, starts[1:])
