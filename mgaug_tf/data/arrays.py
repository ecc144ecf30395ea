"""The `arrays` dataset: the user's own non-image examples, in `.npz` files.

`data_dir/{train,val,test}.npz`, or one `data_dir/data.npz` plus a split file
naming the classes of each split (the forms of `folder.read_split_file`).
Each file holds `x` `[N, ...]` (numeric, any shape per example: vectors,
sequences, spectrograms) and `y` `[N]` (int or string labels). Examples are
fed to the learner as float32 with their values unchanged; uint8 arrays are
not taken for images (use the `folder` dataset, or
`FewShotSplit.from_arrays`, for images).
"""

import zipfile

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, clause, short_listing
from mgaug_tf.data.folder import missing_classes_message, read_split_file
from mgaug_tf.data.formats import Dataset, Format
from mgaug_tf.data.sources import ExampleSource
from mgaug_tf.data.split import FewShotSplit, check_examples, group_labels
from mgaug_tf.data.tiered import open_npz_array


def read_npz(path):
    """`(x, y)` of an arrays file: `x` memory-mapped when stored uncompressed.

    Raises:
        CorruptDataError: Not an npz (zip) file, `x` or `y` missing, `x` not
            numeric `[N, ...]` or holding NaN or inf (`split.check_finite`), `y`
            not `[N]` int or string labels, or a length mismatch (each naming
            the file).
    """
    # Without this, np.load takes any other file for a pickle and blames y.
    if not zipfile.is_zipfile(path):
        raise CorruptDataError(f"{path} is not an .npz (zip) file; expected one written by "
                               "np.savez(path, x=x, y=y).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if "y" not in keys:
                raise CorruptDataError(f"{path} has no array 'y' (it has {keys}); expected x "
                                       "[N, ...] and y [N].")
            labels = archive["y"]
    except ValueError as error:
        if isinstance(error, CorruptDataError):
            raise
        if "allow_pickle" in str(error):
            raise CorruptDataError(
                f"{path}: y is an object array, which loads only by unpickling; save string "
                "labels as a str array, e.g. np.savez(path, x=x, y=np.asarray(y, str)).") \
                from None
        raise CorruptDataError(f"Cannot read {path} as an npz file ({clause(error)}).") \
            from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CorruptDataError(f"Cannot read {path} as an npz file ({clause(error)}).") \
            from None
    try:
        examples = open_npz_array(path, "x")
    except ValueError as error:
        if isinstance(error, CorruptDataError):
            raise
        raise CorruptDataError(f"{path}: x cannot be read as a numeric array "
                               f"({clause(error)}).") from None
    return check_examples(examples, f"{path}: x"), labels


def _build(split, examples, class_names, class_items, description):
    held = "memory-mapped" if isinstance(examples, np.memmap) else "in memory"
    return FewShotSplit("arrays", split, class_names, class_items, ExampleSource(examples),
                        default_augment=False, strict_class_sizes=True,
                        description=f"{description} (x {examples.dtype} {held})")


def _read_split_npz(paths, split, split_file=None):
    (path,) = paths
    if split_file is not None:
        raise ValueError(f"split_file={str(split_file)!r} is given, but {path.parent} holds one "
                         f"file per split ({path.name}); a split file goes with one data.npz. "
                         "Pass one or the other.")
    examples, labels = read_npz(path)
    values, class_items = group_labels(labels, len(examples), f"{path}: y")
    return _build(split, examples, [str(value) for value in values], class_items,
                  f"{path.name}")


def _read_one_npz(paths, split, split_file=None):
    (path,) = paths
    if split_file is None:
        raise CorruptDataError(f"{path.parent} holds {path.name} but no {split}.npz; one "
                               "data.npz needs split_file, a JSON or CSV file naming the "
                               "classes (labels) of each split (docs/data.md).")
    names = read_split_file(split_file, split)
    examples, labels = read_npz(path)
    values, class_items = group_labels(labels, len(examples), f"{path}: y")
    index = {str(value): position for position, value in enumerate(values)}
    missing = [name for name in names if name not in index]
    if missing:
        raise CorruptDataError(missing_classes_message(
            split_file, split, missing, f"no label of {path} has",
            f"its labels: {short_listing([repr(str(value)) for value in values])}"))
    keep = sorted(index[name] for name in set(names))
    return _build(split, examples, [str(values[i]) for i in keep],
                  [class_items[i] for i in keep], f"{path.name} + split file {split_file}")


DATASET = Dataset(
    name="arrays",
    aliases=("npz",),
    formats=(
        Format("one npz per split", ("{split}.npz",), _read_split_npz),
        Format("one npz + split_file", ("data.npz",), _read_one_npz),
    ),
    options={"split_file": None},
    summary="your own non-image examples: {train,val,test}.npz, or data.npz and a split file; "
            "x [N, ...] numeric, y [N] int or string labels",
)
