"""tieredImageNet readers: Ren et al. PNG pickles and MetaOptNet/FEAT npz.

Both formats pair the images with `{split}_labels.pkl`. Ren et al.'s labels
hold `label_specific` (class per image), `label_general` (category per image)
and their names; the npz format's hold `labels` (classes numbered across
splits, so val/test start after train) and no categories. Either labels file
is accepted with either images file.
"""

import logging
import mmap
import struct
import zipfile

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, clause
from mgaug_tf.data.formats import Dataset, Format, cache_limit, check_image_size
from mgaug_tf.data.pickles import as_str, load_pickle, scan_png_blobs
from mgaug_tf.data.sources import SIGNATURE_BYTES, ArraySource, EncodedSource
from mgaug_tf.data.split import FewShotSplit, group_by_label

logger = logging.getLogger(__name__)

NATIVE_SIZE = 84


class TieredLabels:
    """The parsed `{split}_labels.pkl` of either format."""

    def __init__(self, path):
        labels = load_pickle(path)
        if not isinstance(labels, dict) or not ({"label_specific", "labels"} & set(labels)):
            keys = sorted(labels) if isinstance(labels, dict) else type(labels).__name__
            raise CorruptDataError(
                f"{path} has {keys}; expected a dict with 'label_specific' (Ren et al.) or "
                "'labels' (MetaOptNet/FEAT).")
        self.path = path
        ren = "label_specific" in labels
        self.per_image = np.asarray(labels["label_specific" if ren else "labels"]).reshape(-1)
        self._names = [as_str(name) for name in labels.get("label_specific_str", [])] if ren \
            else []
        self._general = (np.asarray(labels["label_general"]).reshape(-1)
                         if ren and "label_general" in labels else None)
        self.category_names = ([as_str(name) for name in labels["label_general_str"]]
                               if self._general is not None and "label_general_str" in labels
                               else None)

    def group(self, num_images):
        """`(class_names, class_items, category_labels)` for `num_images` images."""
        label_values, class_items = group_by_label(self.per_image, num_images, self.path)
        if len(self._names) > int(label_values.max()):
            class_names = [self._names[value] for value in label_values]
        else:  # the npz format names no classes
            class_names = [f"class{value}" for value in label_values]
        categories = None
        if self._general is not None:
            if len(self._general) != num_images:
                raise CorruptDataError(f"{self.path}: label_general has {len(self._general)} "
                                       f"entries for {num_images} images.")
            categories = []
            for name, items in zip(class_names, class_items):
                values = np.unique(self._general[items])
                if len(values) != 1:
                    raise CorruptDataError(f"{self.path}: class {name} has images in several "
                                           f"categories {values.tolist()}.")
                categories.append(int(values[0]))
        return class_names, class_items, categories


def _read_ren(paths, split, image_size=None, cache_decoded=None):
    images_path, labels_path = paths
    labels = TieredLabels(labels_path)
    image_size = check_image_size(image_size) or NATIVE_SIZE
    offsets, lengths = scan_png_blobs(images_path)
    if len(offsets) == len(labels.per_image):
        # Each PNG is read straight from the page cache: the split costs only
        # two int64 per image of process memory.
        file = open(images_path, "rb")
        view = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        file.close()
        count = len(offsets)

        def fetch(item):
            return view[offsets[item]:offsets[item] + lengths[item]]

        def peek(item):
            return int(lengths[item]), view[offsets[item]:offsets[item] + SIGNATURE_BYTES]

        how = "PNG bytes memory-mapped in place"
    else:
        logger.warning(
            "%s: the PNG bytes are not stored verbatim (%d found for %d labels), as in a "
            "pickle re-written by Python 3; unpickling it keeps every encoded image in memory.",
            images_path, len(offsets), len(labels.per_image))
        encoded = load_pickle(images_path)
        if not isinstance(encoded, (list, tuple, np.ndarray)):
            raise CorruptDataError(f"{images_path} holds a {type(encoded).__name__}; expected "
                                   "a list of PNG-encoded uint8 arrays.")
        count = len(encoded)

        def fetch(item):
            value = encoded[item]
            return value.tobytes() if isinstance(value, np.ndarray) else bytes(value)

        def peek(item):
            data = fetch(item)
            return len(data), data[:SIGNATURE_BYTES]

        how = "PNG bytes unpickled into memory"
    class_names, class_items, categories = labels.group(count)
    source = EncodedSource(count, fetch, lambda item: f"image #{item} of {images_path}",
                           image_size, 3, cache_limit_bytes=cache_limit(cache_decoded), peek=peek)
    return FewShotSplit("tieredimagenet", split, class_names, class_items, source,
                        category_labels=categories, category_names=labels.category_names,
                        description=f"Ren et al. pickles {images_path.name} ({how}) + "
                                    f"{labels_path.name}")


def _read_npz(paths, split, image_size=None, cache_decoded=None):
    del cache_decoded  # arrays need no decoding
    images_path, labels_path = paths
    labels = TieredLabels(labels_path)
    images = open_npz_array(images_path, "images")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise CorruptDataError(f"{images_path}: 'images' is {images.dtype} {images.shape}; "
                               "expected uint8 [N, H, W, 3] (BGR).")
    class_names, class_items, categories = labels.group(len(images))
    # The npz format stores BGR (OpenCV order); ArraySource flips what it reads.
    source = ArraySource(images, bgr=True, image_size=check_image_size(image_size))
    mapped = isinstance(images, np.memmap)
    return FewShotSplit("tieredimagenet", split, class_names, class_items, source,
                        category_labels=categories, category_names=labels.category_names,
                        description=f"MetaOptNet/FEAT {images_path.name} ("
                                    f"{'memory-mapped' if mapped else 'in memory'}) + "
                                    f"{labels_path.name}")


def open_npz_array(path, key):
    """Opens array `key` of an npz file, memory-mapped when stored uncompressed.

    `np.load(..., mmap_mode="r")` ignores `mmap_mode` for npz files and would
    read a multi-GB array into memory; an uncompressed member of the zip is a
    plain `.npy` file at a known offset, so it can be mapped directly.

    Args:
        path: The `.npz` file.
        key: The array name (`images` for `images.npy` in the zip).

    Returns:
        A read-only `np.memmap`, or an in-memory array when the member is
        compressed (logged, since it costs the array's full size in memory).

    Raises:
        CorruptDataError: Not a zip, no such array, or truncated.
    """
    member = key + ".npy"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if member not in names:
                raise CorruptDataError(f"{path} has no array {key!r}; it has "
                                       f"{[name[:-4] for name in names]}.")
            info = archive.getinfo(member)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CorruptDataError(f"Cannot open {path} as an npz file: {clause(error)}. The file is "
                               "truncated or corrupt; copy it again.") from None
    if info.compress_type != zipfile.ZIP_STORED:
        logger.warning("%s is compressed, so it cannot be memory-mapped; loading %s into "
                       "memory (%.1f GB).", path, key, info.file_size / 1e9)
        try:
            with np.load(path) as archive:
                return archive[key]
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise CorruptDataError(f"Cannot read {key!r} from {path}: {clause(error)}.") from None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise CorruptDataError(f"{path}: bad zip entry for {member}; the file is corrupt.")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        try:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran_order, dtype = read_header(handle)
        except (ValueError, KeyError) as error:
            raise CorruptDataError(f"{path}: {member} is not a readable .npy array "
                                   f"({clause(error)}).") from None
        offset = handle.tell()
        file_size = handle.seek(0, 2)
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if needed > file_size:
        raise CorruptDataError(f"{path} is truncated: {key} {shape} needs {needed} bytes, the "
                               f"file has {file_size}; copy it again.")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran_order else "C")


DATASET = Dataset(
    name="tieredimagenet",
    aliases=("tiered", "tiered_imagenet"),
    formats=(
        Format("MetaOptNet/FEAT npz (BGR)", ("{split}_images.npz", "{split}_labels.pkl"),
               _read_npz),
        Format("Ren et al. PNG pickles", ("{split}_images_png.pkl", "{split}_labels.pkl"),
               _read_ren),
    ),
    options={"image_size": None, "cache_decoded": None},
    summary="tieredImageNet, 351/97/160 classes (Ren et al. PNG pickles or MetaOptNet npz)",
    native_size=NATIVE_SIZE,
)
