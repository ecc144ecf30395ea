"""The `folder` dataset: the user's own images, one folder per class.

Two layouts: `data_dir/{train,val,test}/<class>/<images>`, or
`data_dir/<class>/<images>` plus a split file naming the classes of each
split (`read_split_file`: JSON lists, CloserLook's base/val/novel.json, or a
`class,split` CSV). Images of any size and mode are decoded by Pillow,
converted to `channels` and resized to `image_size` (the package's reader,
`sources.decode_image`). Every problem of the chosen classes (a file that is
not an image, an empty class, a class the split file names but the folder
lacks) is found before any image is decoded, and reported in one error.
"""

import csv
import json
import os
from pathlib import Path

import numpy as np

from mgaug_tf import checks
from mgaug_tf.data.errors import (CorruptDataError, DataNotFoundError, clause, counted,
                                    short_listing)
from mgaug_tf.data.formats import (SPLIT_SPELLINGS, Dataset, Format, cache_limit,
                                   canonical_split, check_image_size, list_dir)
from mgaug_tf.data.sources import RESIZE_RULE, file_source
from mgaug_tf.data.split import FewShotSplit

DEFAULT_IMAGE_SIZE = 84
DEFAULT_CHANNELS = 3
# The encodings whose signatures `sources.quick_image_problem` knows and Pillow decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Files operating systems and tools leave in folders, never the user's data.
IGNORED_NAMES = ("thumbs.db", "desktop.ini", "__macosx")
# CloserLook (Chen et al. 2019) names its three list files by these.
CLOSERLOOK_FILES = {"train": "base.json", "val": "val.json", "test": "novel.json"}


def is_ignored(name):
    """Hidden files and folders (`.DS_Store`, `.ipynb_checkpoints`) and OS litter."""
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def check_channels(channels):
    """Validates the `channels` option: 1 (grey) or 3 (RGB) (`checks.check_channels`).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `channels` (a `ValueError`).
    """
    return checks.check_channels(channels, owner="folder")


# ----------------------------------------------------------------- split files
def missing_classes_message(split_file, split, missing, absent, present):
    """The message for classes `split_file` names that the data does not have.

    `absent` completes "... of the split that ___" (how they are missing),
    `present` is the parenthesis listing what the data does hold; the
    `folder` and `arrays` readers share the wording.
    """
    return (f"split_file {split_file} names {counted(len(missing), 'class', 'classes')} of the "
            f"{split!r} split that {absent}: {short_listing([repr(name) for name in missing])} "
            f"({present}).")


def read_split_file(path, split):
    """The class names a split file gives `split`, in the file's order.

    Accepted forms (the `folder` and `arrays` datasets share them):

    * JSON object of lists: `{"train": [...], "val": [...], "test": [...]}`
      (`"validation"` for `"val"`); a class in two lists is an error.
    * A folder holding CloserLook's `base.json` (train), `val.json`,
      `novel.json`: the split's classes are the `label_names` its
      `image_labels` use (the listed image paths are not read).
    * CSV rows `class,split` (an optional `class,split` header; split
      spelled `train`, `val`/`validation`, `test`).

    Args:
        path: The file or folder.
        split: `"train"`, `"val"` or `"test"`.

    Returns:
        A list of class names (strings), at least one.

    Raises:
        DataNotFoundError: `path` (or CloserLook's file of the split) is missing.
        CorruptDataError: Unparseable, of the wrong form, a class in two
            splits, or no class for `split`.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        names = _read_closerlook(path / CLOSERLOOK_FILES[split])
    elif not path.is_file():
        raise DataNotFoundError(f"split_file {path} does not exist.")
    elif path.suffix.lower() == ".json":
        names = _read_json_lists(path, split)
    elif path.suffix.lower() == ".csv":
        names = _read_csv(path, split)
    else:
        raise CorruptDataError(f"split_file {path}: expected a .json file, a .csv file or a "
                               "folder holding CloserLook's base.json, val.json, novel.json.")
    if not names:
        raise CorruptDataError(f"split_file {path} names no class for the {split!r} split.")
    return names


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"Cannot parse split_file {path} as JSON: "
                               f"{clause(error)}.") from None


def _read_json_lists(path, split):
    lists = _load_json(path)
    if isinstance(lists, dict) and "label_names" in lists:
        raise CorruptDataError(
            f"split_file {path} is a CloserLook list of one split; pass the folder holding "
            "base.json, val.json and novel.json as split_file.")
    if not isinstance(lists, dict):
        raise CorruptDataError(f"split_file {path} holds a JSON {type(lists).__name__}; "
                               'expected an object {"train": [...], "val": [...], "test": '
                               "[...]} of class names.")
    by_split = {}
    for key, names in lists.items():
        try:
            canonical = canonical_split(key)
        except ValueError:
            raise CorruptDataError(f"split_file {path} has the key {key!r}; expected train, "
                                   "val (or validation) and test.") from None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise CorruptDataError(f"split_file {path}: {key!r} must be a list of class "
                                   "names (strings).")
        by_split[canonical] = names
    _check_disjoint(by_split, path)
    if split not in by_split:
        raise CorruptDataError(f"split_file {path} has no {split!r} list (it has "
                               f"{sorted(lists)}).")
    return by_split[split]


def _read_closerlook(path):
    if not path.is_file():
        raise DataNotFoundError(f"split_file folder {path.parent} has no {path.name}; "
                                "CloserLook's lists are base.json (train), val.json and "
                                "novel.json (test).")
    listing = _load_json(path)
    if not isinstance(listing, dict) or not {"label_names", "image_labels"} <= set(listing):
        raise CorruptDataError(f"{path} lacks label_names or image_labels; expected "
                               "CloserLook's list (label_names, image_names, image_labels).")
    label_names, labels = listing["label_names"], listing["image_labels"]
    try:
        used = sorted({int(label) for label in labels})
        return [str(label_names[label]) for label in used]
    except (TypeError, ValueError, IndexError):
        raise CorruptDataError(f"{path}: image_labels must be indices into label_names "
                               f"({len(label_names)} names).") from None


def _read_csv(path, split):
    by_split = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise CorruptDataError(f"Cannot read split_file {path} as UTF-8 text: {clause(error)}.") \
            from None
    for line, row in enumerate(rows, start=1):
        row = [cell.strip() for cell in row]
        if not any(row) or (line == 1 and [cell.lower() for cell in row] == ["class", "split"]):
            continue
        if len(row) != 2 or not row[0]:
            raise CorruptDataError(f"split_file {path} line {line}: {row}; expected "
                                   "'class,split'.")
        try:
            canonical = canonical_split(row[1])
        except ValueError:
            raise CorruptDataError(f"split_file {path} line {line}: split {row[1]!r}; expected "
                                   "train, val (or validation) or test.") from None
        by_split.setdefault(canonical, []).append(row[0])
    _check_disjoint(by_split, path)
    return by_split.get(split, [])


def _check_disjoint(by_split, path):
    seen = {}
    for split, names in by_split.items():
        for name in names:
            if seen.setdefault(name, split) != split:
                raise CorruptDataError(f"split_file {path} puts class {name!r} in both "
                                       f"{seen[name]!r} and {split!r}; splits need disjoint "
                                       "classes.")


# ----------------------------------------------------------------- class folders
def scan_classes(class_dirs, where):
    """The image files of each class folder; every problem found, in one error.

    Args:
        class_dirs: The class folders, in class order.
        where: The folder named in the error.

    Returns:
        A list (one per class) of sorted image paths.

    Raises:
        CorruptDataError: Files that are not images (by suffix; hidden files
            and `Thumbs.db`/`desktop.ini` are ignored), subfolders inside a
            class folder, and class folders with no image, all named.
    """
    per_class, strangers, empty = [], [], []
    for class_dir in class_dirs:
        images = []
        with os.scandir(class_dir) as entries:
            for entry in entries:
                if is_ignored(entry.name):
                    continue
                path = Path(entry.path)
                if entry.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(path)
                else:
                    strangers.append(path.relative_to(where).as_posix()
                                     + ("/" if entry.is_dir() else ""))
        if not images:
            empty.append(class_dir.name)
        per_class.append(sorted(images))
    problems = []
    if strangers:
        are = "is not an image" if len(strangers) == 1 else "are not images"
        problems.append(f"{counted(len(strangers), 'entry', 'entries')} in class folders {are} "
                        f"({', '.join(IMAGE_SUFFIXES)}): {short_listing(sorted(strangers))}")
    if empty:
        have = "has" if len(empty) == 1 else "have"
        problems.append(f"{counted(len(empty), 'class folder')} {have} no images: "
                        f"{short_listing([repr(name) for name in empty])}")
    if problems:
        raise CorruptDataError(
            f"folder {where}: " + "; ".join(problems) + ". Remove or move these (hidden files "
            "such as .DS_Store are ignored); nothing was read.")
    return per_class


def _conversion(size, channels):
    mode = "RGB" if channels == 3 else "grey (L)"
    return (f"folder images are read with Pillow whatever their size and mode, "
            f"converted to {mode} and resized to {size}x{size} ({RESIZE_RULE}, aspect ratio "
            "not kept)")


def _build(split, class_names, files_per_class, image_size, channels, cache_decoded,
           description):
    size = check_image_size(image_size) or DEFAULT_IMAGE_SIZE
    channels = check_channels(channels)
    paths, class_items = [], []
    for files in files_per_class:
        class_items.append(np.arange(len(paths), len(paths) + len(files)))
        paths.extend(files)
    source = file_source(paths, size, channels, cache_limit(cache_decoded))
    return FewShotSplit("folder", split, class_names, class_items, source,
                        default_augment=channels == 3, description=description,
                        strict_class_sizes=True,
                        conversion=_conversion(size, channels))


def _class_dirs(folder):
    return sorted(path for path in folder.iterdir() if path.is_dir() and not is_ignored(path.name))


def _read_split_folders(paths, split, image_size=None, channels=DEFAULT_CHANNELS,
                        split_file=None, cache_decoded=None):
    (split_dir,) = paths
    check_channels(channels)  # a wrong option is named before any folder is scanned
    if split_file is not None:
        raise ValueError(f"split_file={str(split_file)!r} is given, but {split_dir.parent} holds "
                         f"split folders ({split_dir.name}/); a split file goes with a data_dir "
                         "of class folders. Pass one or the other.")
    class_dirs = _class_dirs(split_dir)
    if not class_dirs:
        raise DataNotFoundError(f"{split_dir} holds no class folders (it holds: "
                                f"{list_dir(split_dir)}); expected {split_dir}/<class>/<images>.")
    files = scan_classes(class_dirs, split_dir.parent)
    return _build(split, [path.name for path in class_dirs], files, image_size, channels,
                  cache_decoded, f"class folders {split_dir}/<class>/")


def _locate_class_folders(data_dir, split):
    del split
    return [data_dir] if _class_dirs(data_dir) else None


def _read_class_folders(paths, split, image_size=None, channels=DEFAULT_CHANNELS,
                        split_file=None, cache_decoded=None):
    (root,) = paths
    check_channels(channels)  # a wrong option is named before any folder is scanned
    if split_file is None:
        spellings = "/, ".join(SPLIT_SPELLINGS[split])
        split_dirs = [name + "/" for names in SPLIT_SPELLINGS.values() for name in names
                      if (root / name).is_dir()]
        if split_dirs:
            raise DataNotFoundError(f"{root} has split folders {', '.join(split_dirs)} but no "
                                    f"{spellings}/ folder for the {split!r} split.")
        raise DataNotFoundError(
            f"{root} has no {spellings}/ folder for the {split!r} split; its folders "
            f"({list_dir(root)}) need split_file, a JSON or CSV file naming the classes of "
            "each split (docs/data.md).")
    names = read_split_file(split_file, split)
    present = {path.name for path in _class_dirs(root)}
    missing = [name for name in names if name not in present]
    if missing:
        raise DataNotFoundError(missing_classes_message(
            split_file, split, missing,
            f"{'is not a folder' if len(missing) == 1 else 'are not folders'} in {root}",
            f"it holds: {list_dir(root)}"))
    class_names = sorted(set(names))
    files = scan_classes([root / name for name in class_names], root)
    return _build(split, class_names, files, image_size, channels, cache_decoded,
                  f"class folders {root}/<class>/ + split file {split_file}")


DATASET = Dataset(
    name="folder",
    aliases=("folders", "image_folder"),
    formats=(
        Format("split folders", ("{split}/",), _read_split_folders),
        Format("class folders + split_file", ("<class>/ + the split_file option",),
               _read_class_folders, locate=_locate_class_folders),
    ),
    options={"image_size": None, "channels": DEFAULT_CHANNELS, "split_file": None,
             "cache_decoded": None},
    summary="your own images: {train,val,test}/<class>/ folders, or <class>/ folders and a "
            "split file (JSON, CloserLook json lists, or CSV)",
)
