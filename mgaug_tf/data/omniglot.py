"""Omniglot reader: the two original zips or their extracted folders.

Splits:
  * `split_scheme="vinyals"` (default): 1028 / 172 / 423 characters, the
    split of Vinyals et al. used by MAML and ProtoNet. It is a rule, so no
    list file is needed: val is 5 background alphabets; train is the rest of
    the background set plus the first 236 evaluation characters in sorted
    (alphabet, character) order; test is the other 423 evaluation characters.
    Each character comes in 4 rotations (0/90/180/270) as separate classes.
  * `split_scheme="background_evaluation"`: Lake et al.'s split, train =
    background (964), test = evaluation (659), no val, no rotations.

Images are inverted (strokes 255 on 0) and resized to `image_size` (28).
"""

import threading
import zipfile

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError, clause
from mgaug_tf.data.formats import Dataset, Format, cache_limit, check_image_size
from mgaug_tf.data.sources import EncodedSource, RotatedSource, read_file
from mgaug_tf.data.split import FewShotSplit

SETS = ("background", "evaluation")
SET_SIZES = {"background": 964, "evaluation": 659}
VINYALS_VAL_ALPHABETS = frozenset(
    {"Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)"})
VINYALS_EVALUATION_CHARACTERS_IN_TRAIN = 236
SCHEMES = ("vinyals", "background_evaluation")


def vinyals_split(background, evaluation, split):
    """The Vinyals et al. characters of `split`.

    Args:
        background: `(alphabet, character)` pairs of `images_background`.
        evaluation: The same for `images_evaluation`.
        split: `"train"`, `"val"` or `"test"`.

    Returns:
        A sorted list of `(set_name, alphabet, character)`.
    """
    background = sorted(background)
    evaluation = sorted(evaluation)
    if len(background) != SET_SIZES["background"] or len(evaluation) != SET_SIZES["evaluation"]:
        raise CorruptDataError(
            f"The Vinyals split needs the full Omniglot ({SET_SIZES['background']} background + "
            f"{SET_SIZES['evaluation']} evaluation characters); found {len(background)} + "
            f"{len(evaluation)}. Use split_scheme='background_evaluation' for a partial copy.")
    cut = VINYALS_EVALUATION_CHARACTERS_IN_TRAIN
    chosen = {
        "train": [("background",) + c for c in background if c[0] not in VINYALS_VAL_ALPHABETS]
                 + [("evaluation",) + c for c in evaluation[:cut]],
        "val": [("background",) + c for c in background if c[0] in VINYALS_VAL_ALPHABETS],
        "test": [("evaluation",) + c for c in evaluation[cut:]],
    }[split]
    return sorted(chosen)


class _OmniglotSet:
    """One of the two image sets, from its zip or its folder."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        if path.is_dir():
            self._zip = None
            names = [str(file.relative_to(path)) for file in path.glob("*/*/*.png")]
        else:
            try:
                self._zip = zipfile.ZipFile(path)
                names = [name for name in self._zip.namelist() if name.endswith(".png")]
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise CorruptDataError(f"Cannot open {path} as a zip: {clause(error)}. The file is "
                                       "truncated or corrupt; copy it again.") from None
        self.characters = {}
        for name in sorted(names):
            parts = name.split("/")
            if len(parts) >= 3:  # [images_background/]Alphabet/characterNN/file.png
                self.characters.setdefault((parts[-3], parts[-2]), []).append(name)
        if not self.characters:
            raise DataNotFoundError(f"{path} holds no Alphabet/characterNN/*.png images.")

    def read(self, name):
        if self._zip is None:
            return read_file(self.path / name)
        with self._lock:  # one zip handle shared by the pipeline's threads
            try:
                return self._zip.read(name)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise CorruptDataError(f"Cannot read {name} from {self.path}: {clause(error)}. The "
                                       "zip is truncated or corrupt; copy it again.") from None

    def describe(self, name):
        return f"{self.path}/{name}" if self._zip is None else f"{name} in {self.path}"


def _locate(data_dir, split):
    del split  # both sets are always located; the scheme picks from them
    paths = []
    for set_name in SETS:
        for candidate in (data_dir / f"images_{set_name}", data_dir / f"images_{set_name}.zip"):
            if candidate.is_dir() or candidate.is_file():
                paths.append(candidate)
                break
        else:
            return None
    return paths


def rotation_degrees(rotations, scheme):
    """Maps the `rotations` option (None, True, False, degrees) to a tuple of degrees."""
    if rotations is None:
        rotations = scheme == "vinyals"
    if rotations is True:
        return (0, 90, 180, 270)
    if rotations is False:
        return (0,)
    try:
        rotations = tuple(int(degrees) for degrees in rotations)
    except TypeError:
        raise ValueError(f"rotations must be None, True, False or a list of degrees; got "
                         f"{rotations!r}.") from None
    if not rotations or any(degrees % 90 for degrees in rotations):
        raise ValueError(f"rotations must be multiples of 90 degrees; got {rotations}.")
    return rotations


def check_scheme(split, split_scheme):
    """Validates `split_scheme` for `split` (shared by the raw and TFDS readers)."""
    if split_scheme not in SCHEMES:
        raise ValueError(f"split_scheme={split_scheme!r}; use one of {SCHEMES}.")
    if split_scheme == "background_evaluation" and split == "val":
        raise ValueError("split_scheme='background_evaluation' has no val split (train = "
                         "images_background, test = images_evaluation); use "
                         "split_scheme='vinyals' for a val split.")


def choose_characters(background, evaluation, split, split_scheme):
    """The characters of `split` under `split_scheme`.

    Args:
        background, evaluation: `(alphabet, character)` pairs of each set.
        split: `"train"`, `"val"` or `"test"`.
        split_scheme: `"vinyals"` or `"background_evaluation"`.

    Returns:
        A sorted list of `(set_name, alphabet, character)`.
    """
    if split_scheme == "vinyals":
        return vinyals_split(background, evaluation, split)
    set_name, pairs = (("background", background) if split == "train"
                       else ("evaluation", evaluation))
    return [(set_name,) + c for c in sorted(pairs)]


def character_split(split, characters, base_items, base, rotations, description):
    """The `FewShotSplit` of `characters`, each character at every rotation.

    Args:
        split: The canonical split name.
        characters: `(set_name, alphabet, character)` per character.
        base_items: One int array per character: its item ids in `base`.
        base: An `ImageSource` of the unrotated 28 px inverted images.
        rotations: Degrees, multiples of 90; each rotation is its own class.
        description: `FewShotSplit.description`.
    """
    source = RotatedSource(base, rotations)
    alphabets = sorted({alphabet for _, alphabet, _ in characters})
    class_names, class_items, categories, groups = [], [], [], []
    for character_index, ((_, alphabet, character), items) in enumerate(
            zip(characters, base_items)):
        for index, degrees in enumerate(rotations):
            suffix = f"/rot{degrees:03d}" if rotations != (0,) else ""
            class_names.append(f"{alphabet}/{character}{suffix}")
            class_items.append(np.asarray(items, np.int64) * len(rotations) + index)
            categories.append(alphabets.index(alphabet))
            groups.append(character_index)  # a character's rotations: one source class
    return FewShotSplit("omniglot", split, class_names, class_items, source,
                        category_labels=categories, category_names=alphabets,
                        default_augment=False, description=description, class_groups=groups)


def _read(paths, split, image_size=28, split_scheme="vinyals", rotations=None,
          cache_decoded=None):
    check_scheme(split, split_scheme)
    image_size = check_image_size(image_size)
    rotations = rotation_degrees(rotations, split_scheme)
    sets = dict(zip(SETS, (_OmniglotSet(path) for path in paths)))
    characters = choose_characters(sets["background"].characters,
                                   sets["evaluation"].characters, split, split_scheme)

    files, base_items = [], []
    for set_name, alphabet, character in characters:
        names = sets[set_name].characters[(alphabet, character)]
        base_items.append(np.arange(len(files), len(files) + len(names)))
        files.extend((sets[set_name], name) for name in names)
    base = EncodedSource(len(files), lambda item: files[item][0].read(files[item][1]),
                         lambda item: files[item][0].describe(files[item][1]), image_size, 1,
                         # White strokes on black: the PNGs are black strokes on white.
                         invert=True, cache_limit_bytes=cache_limit(cache_decoded))
    return character_split(split, characters, base_items, base, rotations,
                           f"Omniglot {paths[0].name} + {paths[1].name} ({split_scheme} split, "
                           f"rotations {list(rotations)})")


DATASET = Dataset(
    name="omniglot",
    aliases=(),
    formats=(Format("Omniglot zips or extracted folders",
                    ("images_background.zip (or images_background/)",
                     "images_evaluation.zip (or images_evaluation/)"),
                    _read, locate=_locate),),
    options={"image_size": 28, "split_scheme": "vinyals", "rotations": None,
             "cache_decoded": None},
    summary="Omniglot, Vinyals 1028/172/423 characters x 4 rotations (zips or folders)",
    native_size=105,  # the scans' size
)
