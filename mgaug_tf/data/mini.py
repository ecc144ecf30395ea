"""miniImageNet readers: Ravi csv + images/, class folders, and two pickle formats."""

import csv
import os

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError
from mgaug_tf.data.formats import Dataset, Format, cache_limit, check_image_size
from mgaug_tf.data.pickles import as_str, load_pickle, require_keys
from mgaug_tf.data.sources import ArraySource, file_source, list_images
from mgaug_tf.data.split import FewShotSplit, group_by_label

NATIVE_SIZE = 84


def _read_ravi_csv(paths, split, image_size=None, cache_decoded=None):
    csv_path, images_dir = paths
    by_class = {}
    with open(csv_path, newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or [cell.strip() for cell in header] != ["filename", "label"]:
            raise CorruptDataError(f"{csv_path} starts with {header}; expected the header "
                                   "'filename,label' of Ravi & Larochelle's split files.")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != 2:
                raise CorruptDataError(f"{csv_path} line {line}: {row}; expected "
                                       "'filename,label'.")
            by_class.setdefault(row[1].strip(), []).append(row[0].strip())
    present = set(os.listdir(images_dir))
    missing = [name for names in by_class.values() for name in names if name not in present]
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} images listed in {csv_path} are missing from {images_dir}, "
            f"e.g. {images_dir / missing[0]}.")
    class_names = sorted(by_class)
    paths, class_items = [], []
    for name in class_names:
        class_items.append(np.arange(len(paths), len(paths) + len(by_class[name])))
        paths.extend(images_dir / filename for filename in by_class[name])
    source = file_source(paths, check_image_size(image_size) or NATIVE_SIZE, 3,
                         cache_limit(cache_decoded))
    return FewShotSplit("miniimagenet", split, class_names, class_items, source,
                        description=f"Ravi & Larochelle {csv_path.name} + {images_dir.name}/")


def _read_class_folders(paths, split, image_size=None, cache_decoded=None):
    (split_dir,) = paths
    class_dirs = sorted(path for path in split_dir.iterdir() if path.is_dir())
    paths, class_items, class_names = [], [], []
    for class_dir in class_dirs:
        files = list_images(class_dir)
        if files:
            class_names.append(class_dir.name)
            class_items.append(np.arange(len(paths), len(paths) + len(files)))
            paths.extend(files)
    if not paths:
        raise DataNotFoundError(f"{split_dir} has no class folders with .jpg/.png images; "
                                "expected {split}/<wnid>/*.jpg.")
    source = file_source(paths, check_image_size(image_size) or NATIVE_SIZE, 3,
                         cache_limit(cache_decoded))
    return FewShotSplit("miniimagenet", split, class_names, class_items, source,
                        description=f"class folders {split_dir}/<class>/")


def _checked_images(data, path, key):
    images = np.asarray(data)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise CorruptDataError(f"{path}: {key!r} is {images.dtype} {images.shape}; expected "
                               "uint8 [N, H, W, 3] RGB.")
    return images


def _read_cache_pickle(paths, split, image_size=None, cache_decoded=None):
    del cache_decoded  # arrays need no decoding
    (path,) = paths
    cache = require_keys(load_pickle(path), ["image_data", "class_dict"], path)
    images = _checked_images(cache["image_data"], path, "image_data")
    class_names = sorted(cache["class_dict"])
    class_items = [np.asarray(cache["class_dict"][name], np.int64).reshape(-1)
                   for name in class_names]
    for name, items in zip(class_names, class_items):
        if len(items) and (items.min() < 0 or items.max() >= len(images)):
            raise CorruptDataError(f"{path}: class_dict[{name!r}] indexes images outside "
                                   f"0..{len(images) - 1}.")
    return FewShotSplit("miniimagenet", split, class_names, class_items,
                        ArraySource(images, image_size=check_image_size(image_size)),
                        description=f"pickle cache {path.name}")


def _read_category_pickle(paths, split, image_size=None, cache_decoded=None):
    del cache_decoded  # arrays need no decoding
    (path,) = paths
    data = require_keys(load_pickle(path), ["data", "labels"], path)
    images = _checked_images(data["data"], path, "data")
    # Labels are global (train 0-63, val 64-79, test 80-99): re-index per split.
    label_values, class_items = group_by_label(data["labels"], len(images), path)
    class_names = [_category_pickle_name(data, int(value)) for value in label_values]
    return FewShotSplit("miniimagenet", split, class_names, class_items,
                        ArraySource(images, image_size=check_image_size(image_size)),
                        description=f"category-split pickle {path.name}")


def _category_pickle_name(data, label):
    """The wnid of global `label`, from `label2catname` or `catname2label`."""
    if "label2catname" in data:
        try:
            return as_str(data["label2catname"][label])
        except (KeyError, IndexError, TypeError):
            pass
    for name, value in (data.get("catname2label") or {}).items():
        if value == label:
            return as_str(name)
    return f"class{label}"


DATASET = Dataset(
    name="miniimagenet",
    aliases=("mini", "mini_imagenet"),
    formats=(
        Format("Ravi & Larochelle csv + flat images folder", ("{split}.csv", "images/"),
               _read_ravi_csv),
        Format("pickle cache", ("mini-imagenet-cache-{split}.pkl",), _read_cache_pickle),
        Format("category-split pickle", ("miniImageNet_category_split_{split}.pickle",),
               _read_category_pickle,
               spellings={"train": ("train_phase_train",), "val": ("val", "validation"),
                          "test": ("test",)}),
        Format("class folders", ("{split}/",), _read_class_folders),
    ),
    options={"image_size": None, "cache_decoded": None},
    summary="miniImageNet, 64/16/20 classes (Ravi csv, class folders, or pickles)",
    native_size=NATIVE_SIZE,
)
