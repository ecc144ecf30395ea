"""What every reader declares: its formats, the files each needs, its options.

`load` (in `load.py`) walks a dataset's formats in order and reads the first
whose files are all present; when none is, the error lists each format's
files, built from the same declarations.
"""

import dataclasses
import os
from pathlib import Path
from typing import Callable, Optional, Tuple

from mgaug_tf.data.sources import DEFAULT_CACHE_LIMIT_BYTES

SPLITS = ("train", "val", "test")

# On-disk spellings of each split; the first present is used.
SPLIT_SPELLINGS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


def canonical_split(split):
    """Maps `"train"`, `"val"`/`"validation"`, `"test"` to the canonical name.

    Raises:
        ValueError: Any other value.
    """
    key = str(split).strip().lower()
    if key == "validation":
        key = "val"
    if key not in SPLITS:
        raise ValueError(f"split={split!r} is not a split; use one of 'train', 'val' "
                         "('validation'), 'test'.")
    return key


@dataclasses.dataclass(frozen=True)
class Format:
    """One on-disk format of a dataset.

    Attributes:
        name: Human name, shown in errors and `split.description`.
        files: Templates of the required paths relative to `data_dir`, with
            `{split}` for the on-disk split spelling; a trailing `/` marks a
            folder. Shown in the error when nothing matches.
        read: `read(paths, split, **options) -> FewShotSplit`, given the
            resolved `paths` (one per template) and the canonical split.
        spellings: Overrides `SPLIT_SPELLINGS` (e.g. the category-split
            pickles call the train split `train_phase_train`).
        locate: Optional custom `locate(data_dir, split) -> paths or None`
            for layouts that templates cannot express.
    """

    name: str
    files: Tuple[str, ...]
    read: Callable
    spellings: Optional[dict] = None
    locate: Optional[Callable] = None

    def find(self, data_dir, split):
        """The resolved required paths, or None when any is missing."""
        if self.locate is not None:
            return self.locate(data_dir, split)
        for spelling in (self.spellings or SPLIT_SPELLINGS)[split]:
            paths = [data_dir / template.format(split=spelling) for template in self.files]
            if all(path.is_dir() if template.endswith("/") else path.is_file()
                   for path, template in zip(paths, self.files)):
                return paths
        return None

    def expected(self, split):
        """The required files for `split`, for error messages."""
        spellings = (self.spellings or SPLIT_SPELLINGS)[split]
        shown = " + ".join(template.format(split=spellings[0]) for template in self.files)
        if len(spellings) > 1:
            shown += f"  ('{spellings[0]}' may be spelled " + ", ".join(
                repr(spelling) for spelling in spellings[1:]) + ")"
        return f"{self.name}: {shown}"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset: its names, its formats in detection order, its load options.

    Attributes:
        name: Canonical name.
        aliases: Other accepted names.
        formats: Tried in order; the first whose files exist is read.
        options: Accepted `load` keyword options and their defaults.
        summary: One line for `available_datasets`.
        needs_data_dir: False for the built-in dataset.
        native_size: The height and width of the images as the dataset holds
            them, when all share one (None: they vary, as CUB's photographs
            do); an `image_size` far above it only upsamples.
    """

    name: str
    aliases: Tuple[str, ...]
    formats: Tuple[Format, ...]
    options: dict
    summary: str
    needs_data_dir: bool = True
    native_size: Optional[int] = None


def cache_limit(cache_decoded):
    """Maps the `cache_decoded` option (None = automatic, True, False) to bytes."""
    if cache_decoded is None:
        return DEFAULT_CACHE_LIMIT_BYTES
    if not isinstance(cache_decoded, bool):
        raise ValueError(f"cache_decoded must be None, True or False; got {cache_decoded!r}.")
    return float("inf") if cache_decoded else 0


def check_image_size(image_size):
    """Validates the `image_size` option (a positive int, or None)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int; got {image_size!r}.")
    return image_size


def list_dir(directory, limit=12):
    """A short listing of `directory` for error messages."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return "(unreadable)"
    if not names:
        return "(empty)"
    shown = [name + ("/" if (Path(directory) / name).is_dir() else "") for name in names[:limit]]
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(shown) + more
