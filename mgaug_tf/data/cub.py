"""CUB-200-2011 readers: the `images/` class folders, or base/val/novel json lists.

The few-shot split is a rule on the sorted class folders (no list file):
index % 2 == 0 -> train (100), index % 4 == 1 -> val (50), index % 4 == 3 ->
test (50). Images (of varying size) are resized to `image_size` (84) without
keeping the aspect ratio; bounding boxes are not used.
"""

import json
import re

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError, clause
from mgaug_tf.data.formats import Dataset, Format, cache_limit, check_image_size
from mgaug_tf.data.sources import file_source, list_images
from mgaug_tf.data.split import FewShotSplit, group_by_label

NATIVE_SIZE = 84
_CLASS_FOLDER = re.compile(r"^\d+\.")


def cub_split_rule(index, split):
    """Whether the class at `index` of the sorted class folders is in `split`."""
    return {"train": index % 2 == 0, "val": index % 4 == 1, "test": index % 4 == 3}[split]


def _locate_images(data_dir, split):
    del split
    for images_dir in (data_dir / "CUB_200_2011" / "images", data_dir / "images"):
        if images_dir.is_dir() and any(_CLASS_FOLDER.match(path.name)
                                       for path in images_dir.iterdir() if path.is_dir()):
            return [images_dir]
    return None


def _read_images(paths, split, image_size=None, cache_decoded=None):
    (images_dir,) = paths
    class_dirs = sorted(path for path in images_dir.iterdir()
                        if path.is_dir() and _CLASS_FOLDER.match(path.name))
    class_names, class_items, files = [], [], []
    for index, class_dir in enumerate(class_dirs):
        if not cub_split_rule(index, split):
            continue
        images = list_images(class_dir)
        if not images:
            raise DataNotFoundError(f"CUB class folder {class_dir} has no .jpg images.")
        class_names.append(class_dir.name)
        class_items.append(np.arange(len(files), len(files) + len(images)))
        files.extend(images)
    if not class_names:
        raise DataNotFoundError(f"{images_dir} has too few class folders for a {split} split "
                                f"({len(class_dirs)} found; CUB-200-2011 has 200).")
    source = file_source(files, check_image_size(image_size) or NATIVE_SIZE, 3,
                         cache_limit(cache_decoded))
    return FewShotSplit("cub", split, class_names, class_items, source,
                        description=f"CUB-200-2011 {images_dir} ({len(class_dirs)} classes, "
                                    "sorted-index split rule)")


def _read_json(paths, split, image_size=None, cache_decoded=None):
    (json_path,) = paths
    try:
        with open(json_path) as handle:
            listing = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"Cannot parse {json_path} as json: {clause(error)}.") from None
    missing_keys = [key for key in ("label_names", "image_names", "image_labels")
                    if key not in listing]
    if missing_keys:
        raise CorruptDataError(f"{json_path} lacks {missing_keys}; expected label_names, "
                               "image_names, image_labels.")
    # Paths are absolute, or relative to the json's folder.
    files = [json_path.parent / name for name in listing["image_names"]]
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise DataNotFoundError(f"{len(missing)} images listed in {json_path} are missing, "
                                f"e.g. {missing[0]}.")
    label_values, class_items = group_by_label(listing["image_labels"], len(files), json_path)
    class_names = [str(listing["label_names"][value]) for value in label_values]
    source = file_source(files, check_image_size(image_size) or NATIVE_SIZE, 3,
                         cache_limit(cache_decoded))
    return FewShotSplit("cub", split, class_names, class_items, source,
                        description=f"CUB json list {json_path.name}")


DATASET = Dataset(
    name="cub",
    aliases=("cub200", "cub_200_2011"),
    formats=(
        Format("CUB-200-2011 class folders", ("CUB_200_2011/images/ (or images/)",),
               _read_images, locate=_locate_images),
        Format("base/val/novel json lists", ("{split}.json",), _read_json,
               spellings={"train": ("base",), "val": ("val",), "test": ("novel",)}),
    ),
    options={"image_size": None, "cache_decoded": None},
    summary="CUB-200-2011, 100/50/50 classes (images/ class folders or base/val/novel json)",
)
