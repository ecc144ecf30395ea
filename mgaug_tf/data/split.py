"""`FewShotSplit`: the classes of one split and a way to read their examples (images or arrays)."""

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, counted
from mgaug_tf.data.sources import ArraySource, ExampleSource


class FewShotSplit:
    """The classes of one dataset split and their examples (images or any array).

    Attributes:
        dataset: Canonical dataset name, e.g. `"miniimagenet"`.
        split: `"train"`, `"val"` or `"test"`.
        class_names: One name per class (a WordNet id, `Alphabet/characterNN`...).
        num_classes: `len(class_names)`.
        is_image: Whether the examples are uint8 images (every reader but
            `arrays` and `from_examples`); non-image examples are float32
            arrays, fed to the learner unchanged.
        example_shape: The shape of one example: `image_shape` for images,
            e.g. `(128,)` or `(50, 3)` for arrays.
        image_shape: `(height, width, channels)` of every image (RGB: 3,
            Omniglot and glyphs: 1); None for non-image examples.
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
        strict_class_sizes: True for the user's own data (`folder`,
            `arrays`): a class with fewer than `k_shot + k_query` examples is
            an error rather than a class episodes never draw.
        conversion: How files of any size and mode become this split's
            images, as one sentence for a log (None when the dataset has one
            known format).

    Example:
        >>> split = mgaug_tf.data.load("miniimagenet", "/data/mini", "val")
        >>> split.num_classes, split.images(0).shape
        (16, (600, 84, 84, 3))
    """

    def __init__(self, dataset, split, class_names, class_items, source, category_labels=None,
                 category_names=None, default_augment=True, description="", class_groups=None,
                 strict_class_sizes=False, conversion=None):
        if len(class_names) != len(class_items):
            raise ValueError(f"{len(class_names)} class names for {len(class_items)} classes.")
        self.dataset = dataset
        self.split = split
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self._class_items = [np.asarray(items, np.int64) for items in class_items]
        self._source = source
        self.is_image = bool(source.is_image)
        self.example_shape = tuple(source.example_shape)
        self.image_shape = self.example_shape if self.is_image else None
        self.strict_class_sizes = bool(strict_class_sizes)
        self.conversion = conversion
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

    @classmethod
    def from_examples(cls, examples, labels, class_names=None, dataset="arrays", split="train"):
        """Builds a split of non-image examples from in-memory arrays.

        Args:
            examples: Numeric (bool, int or float) `[N, ...]` with at least
                one axis per example (vectors `[N, D]`, sequences `[N, T, D]`,
                spectrograms...); read as float32, values unchanged.
            labels: `[N]` int or string labels; classes are numbered in the
                labels' sorted order.
            class_names: Optional names, one per distinct label (sorted
                order; default: `str(label)`).
            dataset, split: Names used in messages.

        Raises:
            ValueError: `examples` or `labels` of the wrong kind or length,
                or NaN or inf in `examples` (`check_finite`).

        Example:
            >>> split = FewShotSplit.from_examples(np.zeros((40, 16)), np.repeat(["a", "b"], 20))
            >>> split.example_shape, split.is_image, split.class_names
            ((16,), False, ('a', 'b'))
        """
        examples = check_examples(examples, "examples")
        label_values, class_items = group_labels(labels, len(examples), "labels")
        if class_names is None:
            class_names = [str(value) for value in label_values]
        return cls(dataset, split, class_names, class_items, ExampleSource(examples),
                   default_augment=False, description="in-memory arrays",
                   strict_class_sizes=True)

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
            class_groups=self.class_groups[keep], strict_class_sizes=self.strict_class_sizes,
            conversion=self.conversion)

    def wrap_source(self, wrap, description):
        """This split with its source replaced by `wrap(source)`.

        Args:
            wrap: `callable(source) -> ImageSource` over the same item ids
                (e.g. `mgaug_tf.data.convert.ChannelSource`).
            description: The new split's `description`.

        Returns:
            A new `FewShotSplit` with the same classes, items, categories,
            groups and settings, reading through the wrapped source.
        """
        return FewShotSplit(
            self.dataset, self.split, self.class_names, self._class_items, wrap(self._source),
            category_labels=self.category_labels, category_names=self.category_names,
            default_augment=self.default_augment, description=description,
            class_groups=self.class_groups, strict_class_sizes=self.strict_class_sizes,
            conversion=self.conversion)

    def num_images(self, class_index):
        """Number of images (examples) of class `class_index`."""
        return len(self._class_items[self._check_index(class_index)])

    @property
    def class_sizes(self):
        """int array `[num_classes]`: the number of images (examples) of each class."""
        return np.asarray([len(items) for items in self._class_items], np.int64)

    def images(self, class_index):
        """All images of one class, exactly as the episode pipeline reads them.

        Args:
            class_index: In `[0, num_classes)`.

        Returns:
            uint8 array `[num_images(class_index), H, W, C]`, RGB (C=3) or
            grayscale (C=1), before augmentation and normalisation. For a
            non-image split, its float32 examples (as `examples`).
        """
        return self._source.load(self._class_items[self._check_index(class_index)])

    def examples(self, class_index):
        """All examples of one class, exactly as the episode pipeline reads them.

        Returns:
            `[num_images(class_index), *example_shape]`: uint8 images, or
            float32 arrays for a non-image split.
        """
        return self.images(class_index)

    def load_items(self, items):
        """Examples `[len(items), *example_shape]` for flat item ids (see `item_table`):
        uint8 images, or float32 for a non-image split."""
        return self._source.load(items)

    @property
    def preprocessing(self):
        """How the reader turns a file into this split's uint8 pixels (JSON-ready dict).

        See `mgaug_tf.data.sources.ImageSource.preprocessing`; exported
        SavedModels apply the same rule to raw images. None for a non-image
        split (its arrays are fed unchanged).
        """
        return self._source.preprocessing

    def check_images(self, decode=False, workers=None, progress=None):
        """Finds every unreadable image of the split, before any training.

        Args:
            decode: False: a quick check that decodes nothing
                (each encoded image must be non-empty and start with a
                JPEG, PNG, GIF, BMP or WebP signature; catches empty and
                non-image files, not truncated ones). True: decode every
                image as training would, in parallel threads (minutes for a
                large split).
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
        shape = (f"image_shape={self.image_shape}" if self.is_image
                 else f"example_shape={self.example_shape}")
        return (f"FewShotSplit({self.dataset!r}, split={self.split!r}, "
                f"num_classes={self.num_classes}, "
                f"{'images' if self.is_image else 'examples'}={int(sizes.sum())}, "
                f"{shape}, from={self.description!r})")


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


# Bytes of rows scanned at a time for non-finite values: bounds the memory a
# memory-mapped array costs to one chunk, never a copy of the whole array.
FINITE_CHUNK_BYTES = 64 * 2**20


def check_finite(examples, what, chunk_bytes=None):
    """Refuses NaN and inf in float examples, scanning `chunk_bytes` of rows at a time.

    A memory-mapped array is read once, chunk by chunk, and never copied
    whole. Integer and bool arrays hold no such values and are not read.

    Args:
        examples: Numeric `[N, ...]` (as `check_examples` returns it).
        what: The array or file, named in the error.
        chunk_bytes: Bytes of rows examined at a time (default:
            `FINITE_CHUNK_BYTES`).

    Raises:
        CorruptDataError: Naming `what`, the count of non-finite values and
            the first row holding one.
    """
    if examples.dtype.kind != "f" or not len(examples):
        return
    row_bytes = max(1, examples[:1].nbytes)
    rows = max(1, (chunk_bytes or FINITE_CHUNK_BYTES) // row_bytes)
    count, first = 0, None
    for start in range(0, len(examples), rows):
        finite = np.isfinite(examples[start:start + rows])
        bad = ~finite.reshape(len(finite), -1)
        chunk_count = int(bad.sum())
        if chunk_count and first is None:
            first = start + int(np.flatnonzero(bad.any(axis=1))[0])
        count += chunk_count
    if count:
        raise CorruptDataError(
            f"{what} holds {counted(count, 'non-finite value')} (NaN or inf), "
            f"the first in row {first}; training on them gives NaN losses or meaningless "
            "accuracies. Remove or repair those rows.")


def check_examples(examples, what):
    """Checks non-image examples: a numeric array `[N, ...]` with a feature axis.

    Args:
        examples: The array (a memory map stays one: nothing is copied).
        what: The array or file, named in the error.

    Returns:
        `examples` as a numpy array.

    Raises:
        CorruptDataError: Not numeric (bool, int, float), fewer than 2 axes,
            or NaN or inf values (`check_finite`).
    """
    examples = examples if isinstance(examples, np.ndarray) else np.asarray(examples)
    if examples.dtype.kind not in "biuf":
        raise CorruptDataError(f"{what} must be a numeric array (bool, int or float); got "
                               f"dtype {examples.dtype}.")
    if examples.ndim < 2:
        raise CorruptDataError(
            f"{what} must be [N, ...] with at least one axis per example (vectors [N, D], "
            f"sequences [N, T, D], ...); got shape {examples.shape}. For one number per "
            "example, reshape to [N, 1].")
    check_finite(examples, what)
    return examples


def group_labels(labels, num_examples, what):
    """Groups item ids by int or string label (`group_by_label` for strings too).

    Args:
        labels: `[N]` (or `[N, 1]`) int, or str/bytes labels.
        num_examples: The number of examples the labels must describe.
        what: The labels' array or file, named in the error.

    Returns:
        `(label_values, class_items)`, as `group_by_label`: sorted distinct
        labels (strings for text labels) and the item ids of each.

    Raises:
        CorruptDataError: Wrong length or shape, or labels neither integers
            nor strings.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise CorruptDataError(f"{what} must be [N] labels; got shape {labels.shape}.")
    if len(labels) != num_examples:
        raise CorruptDataError(f"{what} has {len(labels)} labels for {num_examples} examples; "
                               "each example needs one label.")
    if labels.dtype.kind == "S":
        labels = np.char.decode(labels, "utf-8")
    elif labels.dtype.kind == "O":
        if not all(isinstance(label, (str, bytes)) for label in labels):
            raise CorruptDataError(f"{what}: an object array of labels must hold only "
                                   "strings.")
        labels = np.asarray([label.decode("utf-8") if isinstance(label, bytes) else label
                             for label in labels], str)
    if labels.dtype.kind == "U":
        # group_by_label takes integers: number the strings in sorted order.
        names, codes = np.unique(labels, return_inverse=True)
        values, class_items = group_by_label(codes, num_examples, what)
        return names[values], class_items
    if labels.dtype.kind in "iu":
        return group_by_label(labels, num_examples, what)
    raise CorruptDataError(f"{what}: labels must be integers or strings; got dtype "
                           f"{labels.dtype}. Convert them, e.g. y.astype(int).")
