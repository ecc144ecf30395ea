"""Datasets prepared by TensorFlow Datasets (TFDS), read offline as `FewShotSplit`s.

`mgaug_tf.data.load("tfds:NAME", data_dir, split)` reads data that TFDS has
already written to `data_dir` (`tfds build`, `builder.download_and_prepare`)
and never downloads: a dataset that is not prepared there raises
`DataNotFoundError` saying how to prepare it.

| `tfds:` name       | TFDS dataset        | split rule                                   |
|--------------------|---------------------|----------------------------------------------|
| `omniglot`         | `omniglot`          | TFDS `train` = images_background, `test` =   |
|                    |                     | images_evaluation; the raw reader's Vinyals  |
|                    |                     | rule (1028/172/423 characters x 4 rotations) |
|                    |                     | or background/evaluation                     |
| `cifar_fs`         | `cifar100`          | `train+test` by `cifar.CIFAR_FS_CLASSES`      |
| `fc100`            | `cifar100`          | `train+test` by `cifar.FC100_SUPERCLASSES`    |
| `cub`              | `caltech_birds2011` | `train+test` by `cub.cub_split_rule` on the  |
|                    |                     | species label (100/50/50 classes)            |
| `mini_imagenet`    | `mini_imagenet`     | its `train`/`validation`/`test` splits        |
| `tiered_imagenet`  | `tiered_imagenet`   | its `train`/`validation`/`test` splits        |

`mini_imagenet` and `tiered_imagenet` are built from the user's own files by
the builders in `mgaug_tf.data.tfds_builders`; reading them back needs only
the prepared folder (TFDS restores them from their `dataset_info.json`), not
that module.

Pixels: TFDS keeps each image's encoded bytes (Omniglot's and CUB's original
PNG/JPEG files, CIFAR-100's and the builders' lossless PNGs). They are decoded
by the same code as the raw readers (`sources.decode_image`: PIL, grey or RGB,
bilinear resize; Omniglot inverted), so a TFDS split yields the raw reader's
pixels.

Cost: the class index is built in one pass over the records with the images
left encoded (`tfds.decode.SkipDecoding`) and only the needed features parsed
(`tfds.decode.PartialDecoding`); Omniglot reads its labels in a first pass
(no images) to apply the Vinyals rule. Only the split's images are kept:
their encoded bytes stay in memory in chunks of up to 1,024 images (the
encoded size plus 16 bytes of offsets per image; docs/data.md gives
typical sizes per dataset). Images are decoded when an episode needs them, and kept decoded while
the split's decoded size is under the `cache_decoded` limit (512 MiB by
default), as for the raw readers.
"""

import contextlib
import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Tuple

import numpy as np

from mgaug_tf.data import cifar, cub, omniglot
from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError, OptionError, clause
from mgaug_tf.data.formats import cache_limit, check_image_size
from mgaug_tf.data.sources import EncodedSource
from mgaug_tf.data.split import FewShotSplit

PREFIX = "tfds:"
BUILDERS_MODULE = "mgaug_tf.data.tfds_builders"
NATIVE_SIZE = 84  # miniImageNet and tieredImageNet
# TFDS's own split names for the splits of the few-shot builders.
BUILDER_SPLITS = {"train": "train", "val": "validation", "test": "test"}


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
    """A dataset `load("tfds:NAME")` reads.

    Attributes:
        name: The name after `tfds:`.
        tfds_name: The TFDS dataset it reads.
        package_name: `FewShotSplit.dataset` (the raw reader's name).
        aliases: Other accepted names after `tfds:`.
        options: Accepted `load` options and their defaults.
        raw_files: What the raw-file reader needs instead (for the error).
        built_here: Whether `mgaug_tf.data.tfds_builders` builds it from the
            user's files (else TFDS downloads it).
    """

    name: str
    tfds_name: str
    package_name: str
    aliases: Tuple[str, ...]
    options: dict
    raw_files: str
    built_here: bool = False


_IMAGE_OPTIONS = {"image_size": None, "cache_decoded": None}
DATASETS = {dataset.name: dataset for dataset in (
    TfdsDataset("omniglot", "omniglot", "omniglot", (),
                {"image_size": 28, "split_scheme": "vinyals", "rotations": None,
                 "cache_decoded": None},
                "images_background.zip + images_evaluation.zip (or the folders)"),
    TfdsDataset("cifar_fs", "cifar100", "cifar_fs", ("cifarfs",), dict(_IMAGE_OPTIONS),
                "CIFAR_FS_{train,val,test}.pickle"),
    TfdsDataset("fc100", "cifar100", "fc100", (), dict(_IMAGE_OPTIONS),
                "FC100_{train,val,test}.pickle"),
    TfdsDataset("cub", "caltech_birds2011", "cub", ("caltech_birds2011", "cub200"),
                dict(_IMAGE_OPTIONS), "CUB_200_2011/images/ or base/val/novel.json"),
    TfdsDataset("mini_imagenet", "mini_imagenet", "miniimagenet", ("miniimagenet", "mini"),
                dict(_IMAGE_OPTIONS), "any miniImageNet layout of docs/data.md", True),
    TfdsDataset("tiered_imagenet", "tiered_imagenet", "tieredimagenet",
                ("tieredimagenet", "tiered"), dict(_IMAGE_OPTIONS),
                "any tieredImageNet layout of docs/data.md", True),
)}


def _key(name):
    return str(name).strip().lower().replace("-", "").replace("_", "")


_BY_KEY = {_key(alias): dataset for dataset in DATASETS.values()
           for alias in (dataset.name,) + dataset.aliases}


def is_tfds_name(name):
    """Whether `name` asks for a TFDS-prepared dataset (`"tfds:..."`)."""
    return isinstance(name, str) and name.strip().lower().startswith(PREFIX)


def get_dataset(name):
    """The `TfdsDataset` of `"tfds:NAME"` (or of `NAME`).

    Raises:
        ValueError: An unknown name, listing the known ones.
    """
    text = str(name).strip()
    if text.lower().startswith(PREFIX):
        text = text[len(PREFIX):]
    try:
        return _BY_KEY[_key(text)]
    except KeyError:
        known = ", ".join(PREFIX + dataset.name for dataset in DATASETS.values())
        raise ValueError(f"Unknown TFDS dataset {name!r}; available: {known}.") from None


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(f"Reading tfds: datasets needs tensorflow-datasets ({clause(error)}); "
                          "`pip install tensorflow-datasets`.") from None
    return tfds


def _searched(data_dir):
    if data_dir not in (None, ""):
        return str(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


def not_prepared_message(dataset, data_dir):
    """How to prepare `dataset` in `data_dir`, for the not-prepared error."""
    where = _searched(data_dir)
    if dataset.built_here:
        how = (f"build it once from your own files: `python -m {BUILDERS_MODULE} "
               f"{dataset.tfds_name} --manual_dir=<folder with the files> --data_dir={where}` "
               f"(or `tfds build {dataset.tfds_name} --imports={BUILDERS_MODULE} "
               f"--manual_dir=... --data_dir={where}`)")
    else:
        how = (f"prepare it once on a machine with network: `tfds build {dataset.tfds_name} "
               f"--data_dir={where}` (or in Python: tfds.builder({dataset.tfds_name!r}, "
               f"data_dir={where!r}).download_and_prepare()), then copy {where}")
    found = sorted(str(info.parent.relative_to(where)) for info in
                   Path(where).glob(f"{dataset.tfds_name}/**/dataset_info.json"))
    present = (f"it holds {found}, not the version this TensorFlow Datasets reads"
               if found else f"no {where}/{dataset.tfds_name}/<version>/")
    return (f"TFDS dataset {dataset.tfds_name!r} (for {PREFIX}{dataset.name}) is not prepared "
            f"in data_dir {where} ({present}). To use it, {how}. Or read the raw files "
            f"instead: --dataset={dataset.package_name} --data_dir=<folder with "
            f"{dataset.raw_files}>.")


def prepared_builder(dataset, data_dir):
    """The TFDS builder of `dataset` in `data_dir`, checked to be prepared.

    Never downloads: GCS is not tried and an unprepared dataset raises.

    Raises:
        DataNotFoundError: `data_dir` is missing, or the dataset is not
            prepared there (the message says how to prepare it).
    """
    tfds = _tfds()
    if data_dir not in (None, ""):
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DataNotFoundError(f"TFDS data_dir {data_dir} does not exist or is not a "
                                    "folder. " + not_prepared_message(dataset, data_dir))
        data_dir = str(data_dir)
    else:
        data_dir = None  # TFDS's default: $TFDS_DATA_DIR or ~/tensorflow_datasets
    try:
        builder = tfds.builder(dataset.tfds_name, data_dir=data_dir, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataNotFoundError(not_prepared_message(dataset, data_dir)) from None
    if not builder.is_prepared():
        raise DataNotFoundError(not_prepared_message(dataset, data_dir))
    return builder


class EncodedImages:
    """Encoded images (PNG/JPEG bytes) held in memory, in a few large chunks.

    Memory: the encoded bytes, plus two int64 (offset, length) per image.

    Args:
        chunks: `bytes` objects, each several images' bytes concatenated.
        chunk_lengths: One int array per chunk: the byte length of each of
            its images, in order.
    """

    def __init__(self, chunks, chunk_lengths):
        self._chunks = list(chunks)
        chunk_lengths = [np.asarray(lengths, np.int64) for lengths in chunk_lengths]
        empty = np.zeros(0, np.int64)
        self.lengths = np.concatenate(chunk_lengths) if chunk_lengths else empty
        self.offsets = (np.concatenate([np.cumsum(lengths) - lengths
                                        for lengths in chunk_lengths])
                        if chunk_lengths else empty)  # within each image's chunk
        self._first = np.cumsum([0] + [len(lengths) for lengths in chunk_lengths])
        self.nbytes = int(self.lengths.sum())

    def __len__(self):
        return len(self.lengths)

    def get(self, item):
        """The encoded bytes of image `item`."""
        chunk = int(np.searchsorted(self._first, item, side="right")) - 1
        start = int(self.offsets[item])
        return self._chunks[chunk][start:start + int(self.lengths[item])]


class _TfdsDtypeWarning(logging.Filter):
    """Drops TFDS 4.9's own deprecation warning, logged by its `PartialDecoding`.

    `tensorflow_datasets/core/decode/partial_decode.py` reads
    `FeatureConnector.dtype`, which warns on every call; nothing the user
    can act on.
    """

    def filter(self, record):
        return "`FeatureConnector.dtype` is deprecated" not in record.getMessage()


@contextlib.contextmanager
def _quiet_tfds():
    logger, quiet = logging.getLogger("absl"), _TfdsDtypeWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def read_records(builder, tfds_splits, fields, keep=None, image_key="image", batch_size=1024):
    """One pass over TFDS splits: the wanted fields, and the kept images left encoded.

    Only `fields` and the image are parsed (`PartialDecoding`); the image is
    not decoded (`SkipDecoding`). Each split's files are read in order, one
    at a time, so the record order is the same on every run.

    Args:
        builder: A prepared TFDS builder.
        tfds_splits: TFDS split names, e.g. `("train", "test")`, read in turn.
        fields: Names of scalar features to read (ClassLabel ids as int64,
            Text as `str`).
        keep: Optional `keep(columns) -> bool array`, given a batch's fields
            (and `tfds_split`): only the kept records are returned, so the
            bytes of other images are never held. None keeps all.
        image_key: The image feature; None reads only `fields` (no images).

    Returns:
        `(images, columns)`: an `EncodedImages` (None without `image_key`)
        and `{field: np.ndarray [N]}` of the kept records, plus
        `columns["tfds_split"]`, the index in `tfds_splits` of each.

    Raises:
        CorruptDataError: TFDS cannot read the records, or their number
            differs from the count in the dataset's `dataset_info.json`.
    """
    tfds = _tfds()
    import tensorflow as tf

    wanted = dict.fromkeys(tuple(fields) + ((image_key,) if image_key else ()), True)
    decoders = tfds.decode.PartialDecoding(
        wanted, decoders={image_key: tfds.decode.SkipDecoding()} if image_key else None)
    read_config = tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False)
    chunks, lengths = [], []
    columns = {field: [] for field in tuple(fields) + ("tfds_split",)}
    for index, tfds_split in enumerate(tfds_splits):
        count = 0
        try:
            with _quiet_tfds():
                records = builder.as_dataset(split=tfds_split, decoders=decoders,
                                             shuffle_files=False, read_config=read_config)
            for batch in tfds.as_numpy(records.batch(batch_size)):
                size = len(batch[fields[0]])
                count += size
                batch = {field: np.asarray(batch[field]) for field in wanted}
                batch["tfds_split"] = np.full(size, index, np.int64)
                kept = np.ones(size, bool) if keep is None else np.asarray(keep(batch), bool)
                for field in columns:
                    columns[field].append(batch[field][kept])
                if image_key:
                    images = batch[image_key][kept]
                    chunks.append(b"".join(images))
                    lengths.append(np.fromiter(map(len, images), np.int64, len(images)))
        except (tf.errors.OpError, ValueError, KeyError) as error:
            raise CorruptDataError(f"Cannot read TFDS {builder.name} {tfds_split} in "
                                   f"{builder.data_dir}: {type(error).__name__}: "
                                   f"{clause(error)}. The prepared files are incomplete or "
                                   "corrupt; prepare them again.") from None
        expected = builder.info.splits[tfds_split].num_examples
        if expected != count:
            raise CorruptDataError(
                f"TFDS {builder.name} {tfds_split} in {builder.data_dir}: read {count} records, "
                f"its dataset_info.json says {expected}. The prepared files are incomplete; "
                "prepare them again.")
    columns = {field: np.concatenate(values) if values else np.zeros(0, np.int64)
               for field, values in columns.items()}
    for field, values in columns.items():
        if values.dtype == object:  # Text features come back as bytes
            columns[field] = np.asarray([value.decode("utf-8") for value in values])
    images = None
    if image_key:
        images = EncodedImages(chunks, lengths)
    return images, columns


def _check_splits(builder, tfds_splits):
    missing = [name for name in tfds_splits if name not in builder.info.splits]
    if missing:
        raise CorruptDataError(f"TFDS {builder.name} in {builder.data_dir} has the splits "
                               f"{sorted(builder.info.splits)}; it lacks {missing}.")


def _label_names(builder, feature):
    """The stored names of ClassLabel `feature`, or None when none were stored."""
    names = list(builder.info.features[feature].names)
    if names == [str(index) for index in range(len(names))]:
        return None  # TFDS's placeholder names: the prepared copy stored none
    return names


def _source(builder, tfds_splits, images, image_size, channels, options, invert=False):
    """`(source, description)`: decodes the held `images` on demand."""
    where = f"{builder.name} {'+'.join(tfds_splits)} in {builder.data_dir}"
    source = EncodedSource(len(images), images.get,
                           lambda item: f"kept record {int(item)} of TFDS {where}",
                           image_size, channels, invert=invert,
                           cache_limit_bytes=cache_limit(options["cache_decoded"]))
    description = (f"TFDS {where} ({len(images)} encoded images held in memory, "
                   f"{images.nbytes / max(len(images), 1):.0f} B each on average)")
    return source, description


def _load_omniglot(dataset, builder, split, options):
    scheme = options["split_scheme"]
    omniglot.check_scheme(split, scheme)
    image_size = check_image_size(options["image_size"])
    rotations = omniglot.rotation_degrees(options["rotations"], scheme)
    alphabet_names = _label_names(builder, "alphabet")
    if alphabet_names is None:
        raise CorruptDataError(
            f"TFDS omniglot in {builder.data_dir} stores no alphabet names "
            "(alphabet.labels.txt); the Vinyals split is defined by alphabet names. Prepare "
            "it again with `tfds build omniglot`.")
    # TFDS's `train` split is images_background, `test` is images_evaluation;
    # `alphabet` names the alphabet folder and `alphabet_char_id` is the
    # `characterNN` folder number minus one; `label` numbers the 1,623
    # characters (tensorflow_datasets/image_classification/omniglot.py).
    tfds_splits = ("train", "test")
    _check_splits(builder, tfds_splits)
    fields = ("alphabet", "alphabet_char_id", "label")

    def character_ids(columns):  # one int per (set, alphabet, character)
        return (columns["tfds_split"] * 100 + columns["alphabet"]) * 1000 \
            + columns["alphabet_char_id"]

    # Pass 1, labels only: the characters of each set, to apply the split rule.
    _, columns = read_records(builder, tfds_splits, fields, image_key=None)
    key_of, label_of = {}, {}
    for character, label in zip(character_ids(columns), columns["label"]):
        character = int(character)
        if character not in key_of:
            set_index, rest = divmod(character, 100 * 1000)
            alphabet, char_id = divmod(rest, 1000)
            key_of[character] = (omniglot.SETS[set_index], alphabet_names[alphabet],
                                 f"character{char_id + 1:02d}")
        if label_of.setdefault(character, int(label)) != int(label):
            raise CorruptDataError(
                f"TFDS omniglot in {builder.data_dir}: {'/'.join(key_of[character][1:])} has "
                f"images with labels {label_of[character]} and {int(label)}.")
    pairs = {set_name: [key[1:] for key in key_of.values() if key[0] == set_name]
             for set_name in omniglot.SETS}
    characters = omniglot.choose_characters(pairs["background"], pairs["evaluation"], split,
                                            scheme)
    id_of = {key: character for character, key in key_of.items()}
    chosen = np.asarray([id_of[key] for key in characters], np.int64)
    # Pass 2: the chosen characters' images, left encoded.
    images, columns = read_records(builder, tfds_splits, fields,
                                   keep=lambda batch: np.isin(character_ids(batch), chosen))
    kept = character_ids(columns)
    base_items = [np.flatnonzero(kept == character) for character in chosen]
    base, description = _source(builder, tfds_splits, images, image_size, 1, options,
                                invert=True)  # as the raw reader: white strokes on black
    return omniglot.character_split(
        split, characters, base_items, base, rotations,
        f"{description}; {scheme} split, rotations {list(rotations)}")


def _load_cifar(dataset, builder, split, options):
    for feature, expected in (("label", cifar.FINE_NAMES),
                              ("coarse_label", cifar.SUPERCLASS_NAMES)):
        names = _label_names(builder, feature)
        # Without stored names the ids are still CIFAR-100's own numbering
        # (names in alphabetical order), which the package's lists use.
        if names is not None and names != list(expected):
            raise CorruptDataError(
                f"TFDS cifar100 in {builder.data_dir}: the {feature} names {names[:4]}... are "
                f"not CIFAR-100's ({list(expected)[:4]}...).")
    # TFDS's `label` is the fine class, `coarse_label` the superclass
    # (tensorflow_datasets/image_classification/cifar.py). CIFAR-FS and FC100
    # use all 600 images of a class: TFDS's train and test splits together.
    tfds_splits = ("train", "test")
    _check_splits(builder, tfds_splits)
    class_names = list(cifar.split_classes(dataset.name, split))
    wanted = [cifar.FINE_NAMES.index(name) for name in class_names]
    images, columns = read_records(builder, tfds_splits, ("label", "coarse_label", "id"),
                                   keep=lambda batch: np.isin(batch["label"], wanted))
    # Within a class: CIFAR-100's own order (train_00000, ..., test_00000, ...).
    order = np.lexsort((columns["id"], columns["tfds_split"]))
    class_items = []
    for name, fine in zip(class_names, wanted):
        items = order[columns["label"][order] == fine]
        if not len(items):
            raise CorruptDataError(f"TFDS cifar100 in {builder.data_dir} has no image of class "
                                   f"{name} ({dataset.name} {split}).")
        coarse = np.unique(columns["coarse_label"][items]).tolist()
        if coarse != [cifar.SUPERCLASS_OF[name]]:
            raise CorruptDataError(
                f"TFDS cifar100 in {builder.data_dir}: class {name} has coarse_label {coarse}; "
                f"CIFAR-100 puts it in superclass {cifar.SUPERCLASS_OF[name]} "
                f"({cifar.SUPERCLASS_NAMES[cifar.SUPERCLASS_OF[name]]}).")
        class_items.append(items)
    source, description = _source(builder, tfds_splits, images,
                                  check_image_size(options["image_size"]) or 32, 3, options)
    return FewShotSplit(dataset.package_name, split, class_names, class_items, source,
                        category_labels=[cifar.SUPERCLASS_OF[name] for name in class_names],
                        category_names=cifar.SUPERCLASS_NAMES, description=description)


_CUB_FOLDER = re.compile(r"^(\d+)\.")


def _load_cub(dataset, builder, split, options):
    # TFDS's `label` is the class folder's number minus one, i.e. the folder's
    # index in sorted order (tensorflow_datasets/image_classification/
    # caltech_birds.py): the raw reader's split rule applies to it. All
    # images of a class: TFDS's train and test splits together.
    tfds_splits = ("train", "test")
    _check_splits(builder, tfds_splits)

    def in_split(batch):
        return np.fromiter((cub.cub_split_rule(int(label), split) for label in batch["label"]),
                           bool, len(batch["label"]))

    images, columns = read_records(builder, tfds_splits, ("label", "image/filename"),
                                   keep=in_split)
    labels, files = columns["label"], columns["image/filename"]
    order = np.argsort(files, kind="stable")  # the raw reader's order: sorted file names
    class_names, class_items = [], []
    for label in np.unique(labels):
        items = order[labels[order] == label]
        folder = Path(files[items[0]]).parent.name
        match = _CUB_FOLDER.match(folder)
        if match is None or int(match.group(1)) != int(label) + 1:
            raise CorruptDataError(
                f"TFDS caltech_birds2011 in {builder.data_dir}: label {int(label)} has image "
                f"{files[items[0]]!r}; expected a folder '{int(label) + 1:03d}.<Species>'.")
        class_names.append(folder)
        class_items.append(items)
    if not class_names:
        raise CorruptDataError(f"TFDS caltech_birds2011 in {builder.data_dir} has no class of "
                               f"the {split} split.")
    source, description = _source(builder, tfds_splits, images,
                                  check_image_size(options["image_size"]) or cub.NATIVE_SIZE, 3,
                                  options)
    return FewShotSplit(dataset.package_name, split, class_names, class_items, source,
                        description=description)


def _load_built(dataset, builder, split, options):
    """`mini_imagenet` / `tiered_imagenet`, written by `mgaug_tf.data.tfds_builders`."""
    tfds_splits = (BUILDER_SPLITS[split],)
    _check_splits(builder, tfds_splits)
    has_category = "category" in builder.info.features
    images, columns = read_records(builder, tfds_splits, ("label", "index")
                                   + (("category",) if has_category else ()))
    names = list(builder.info.features["label"].names)
    # The builder stored each image's position in its class as the raw reader
    # orders it: restore that order.
    order = np.lexsort((columns["index"], columns["label"]))
    class_labels = np.unique(columns["label"])
    class_items = [order[columns["label"][order] == label] for label in class_labels]
    class_names = [names[label] for label in class_labels]
    category_labels = category_names = None
    if has_category and len(columns["category"]) and all(columns["category"]):
        per_class = [sorted(set(columns["category"][items])) for items in class_items]
        for name, categories in zip(class_names, per_class):
            if len(categories) != 1:
                raise CorruptDataError(f"TFDS {builder.name} in {builder.data_dir}: class "
                                       f"{name} has images in several categories {categories}.")
        category_names = sorted({categories[0] for categories in per_class})
        category_labels = [category_names.index(categories[0]) for categories in per_class]
    source, description = _source(builder, tfds_splits, images,
                                  check_image_size(options["image_size"]) or NATIVE_SIZE, 3,
                                  options)
    return FewShotSplit(dataset.package_name, split, class_names, class_items, source,
                        category_labels=category_labels, category_names=category_names,
                        description=description)


_LOADERS = {"omniglot": _load_omniglot, "cifar_fs": _load_cifar, "fc100": _load_cifar,
            "cub": _load_cub, "mini_imagenet": _load_built, "tiered_imagenet": _load_built}


def load(name, data_dir, split, **options):
    """One split of a TFDS-prepared dataset (use `mgaug_tf.data.load("tfds:NAME", ...)`).

    Args:
        name: `"tfds:omniglot"`, `"tfds:cifar_fs"`, `"tfds:fc100"`, `"tfds:cub"`,
            `"tfds:mini_imagenet"` or `"tfds:tiered_imagenet"`.
        data_dir: The TFDS data_dir (None: `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        split: `"train"`, `"val"` or `"test"` (canonical).
        **options: As for the raw reader of the same dataset (`image_size`,
            `cache_decoded`; Omniglot also `split_scheme`, `rotations`).

    Returns:
        A `FewShotSplit` with the raw reader's classes, names and pixels.

    Raises:
        DataNotFoundError: Not prepared in `data_dir` (says how to prepare it).
        CorruptDataError: The prepared files are incomplete or not as expected.
        ValueError: Unknown name; an unknown option (`OptionError`).
    """
    dataset = get_dataset(name)
    unknown = sorted(set(options) - set(dataset.options))
    if unknown:
        raise OptionError(f"Unknown option(s) {unknown} for {PREFIX}{dataset.name}; it accepts "
                          f"{sorted(dataset.options)}.", PREFIX + dataset.name, unknown,
                          dataset.options)
    options = {**dataset.options, **options}
    cache_limit(options["cache_decoded"])  # validate before reading
    check_image_size(options["image_size"])
    builder = prepared_builder(dataset, data_dir)
    return _LOADERS[dataset.name](dataset, builder, split, options)
