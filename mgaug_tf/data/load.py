"""`load`: the one entry point that finds, detects and reads a dataset split."""

from pathlib import Path

from mgaug_tf.data import (arrays, builtin, cifar, cub, folder, mini, omniglot, sinusoid,
                           tfds_source, tiered)
from mgaug_tf.data.errors import DataNotFoundError, OptionError
from mgaug_tf.data.formats import Dataset, canonical_split, list_dir

# The sinusoid regression tasks: generated, no files, no classes (`data.sinusoid`).
SINUSOID = Dataset(name=sinusoid.NAME, aliases=(), formats=(), options={},
                   summary="built-in regression tasks y = A sin(x - phase) of Finn et al. "
                           "(2017), no files", needs_data_dir=False)
DATASETS = {dataset.name: dataset for dataset in (
    tiered.DATASET, mini.DATASET, omniglot.DATASET, cub.DATASET, cifar.CIFAR_FS,
    cifar.FC100, builtin.DATASET, SINUSOID, folder.DATASET, arrays.DATASET)}


def _key(name):
    return str(name).strip().lower().replace("-", "").replace("_", "")


_BY_KEY = {_key(alias): dataset for dataset in DATASETS.values()
           for alias in (dataset.name,) + dataset.aliases}


def available_datasets():
    """The dataset names `load` accepts, each with its aliases and formats.

    Returns:
        `{name: summary}` for the canonical names, e.g.
        `{"miniimagenet": "miniImageNet, 64/16/20 classes (...)", ...}`.

    Example:
        >>> sorted(mgaug_tf.data.available_datasets())
        ['arrays', 'cifar_fs', 'cub', 'fc100', 'folder', 'glyphs', 'miniimagenet', 'omniglot',
         'sinusoid', 'tieredimagenet']
    """
    return {name: dataset.summary for name, dataset in DATASETS.items()}


def get_dataset(name):
    """The `Dataset` declaration for a name or alias (case, `-` and `_` ignored)."""
    try:
        return _BY_KEY[_key(name)]
    except KeyError:
        names = ", ".join(f"{n}" + (f" ({', '.join(d.aliases)})" if d.aliases else "")
                          for n, d in DATASETS.items())
        tfds_names = ", ".join(tfds_source.PREFIX + n for n in tfds_source.DATASETS)
        raise ValueError(f"Unknown dataset {name!r}; available: {names}; or prepared by "
                         f"TensorFlow Datasets: {tfds_names}.") from None


def native_image_size(name):
    """The size (pixels, height = width) of a dataset's images as it holds them, or None.

    None when the images vary in size (CUB). `name` is any name `load`
    accepts, or a `FewShotSplit.dataset`; a `tfds:` name gives its raw
    reader's size.

    Raises:
        ValueError: An unknown name.
    """
    if tfds_source.is_tfds_name(name):
        name = tfds_source.get_dataset(name).package_name
    return get_dataset(name).native_size


def dataset_objective(name):
    """`"regression"` for the sinusoid tasks, `"classification"` for every other dataset.

    Raises:
        ValueError: An unknown name.
    """
    check_dataset_name(name)
    if not tfds_source.is_tfds_name(name) and get_dataset(name) is SINUSOID:
        return sinusoid.SinusoidTasks.objective
    return "classification"


def check_dataset_name(name):
    """Raises `ValueError` (listing the names) unless `load` accepts `name`.

    Accepts the raw-file names and aliases, and `"tfds:NAME"`.
    """
    if tfds_source.is_tfds_name(name):
        tfds_source.get_dataset(name)
    else:
        get_dataset(name)


def load(name, data_dir=None, split="train", **options):
    """Reads one split of a few-shot dataset from the user's own files.

    The format is detected from the files in `data_dir`; see
    `available_datasets()` and docs/data.md for every accepted layout.
    `"tfds:NAME"` instead reads data prepared by TensorFlow Datasets in the
    TFDS `data_dir`, offline (see `mgaug_tf.data.tfds_source`).

    Args:
        name: `"tieredimagenet"`, `"miniimagenet"`, `"omniglot"`, `"cub"`,
            `"cifar_fs"`, `"fc100"`, or `"glyphs"` (alias `"builtin"`, the
            generated dataset that needs no `data_dir`). Or, prepared by
            TensorFlow Datasets: `"tfds:omniglot"`, `"tfds:cifar_fs"`,
            `"tfds:fc100"`, `"tfds:cub"`, `"tfds:mini_imagenet"`,
            `"tfds:tiered_imagenet"`. `"sinusoid"` gives the regression task
            family of `mgaug_tf.data.sinusoid` (a `SinusoidTasks`, not a
            `FewShotSplit`; no data_dir, no options). Your own data:
            `"folder"` (images in class folders) and `"arrays"` (non-image
            examples in `.npz` files), see `mgaug_tf.data.folder` and
            `mgaug_tf.data.arrays`.
        data_dir: The folder holding the dataset's files; for `tfds:` names
            the TFDS data_dir (None: `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        split: `"train"`, `"val"` (or `"validation"`) or `"test"`.
        **options: Dataset options. All datasets: `image_size` (resize
            images to this, default: the dataset's usual size). Datasets
            decoded from PNG/JPEG: `cache_decoded` (None: keep decoded images
            in memory when the split needs under 512 MiB; True/False force
            it). Omniglot: `split_scheme` (`"vinyals"` or
            `"background_evaluation"`), `rotations` (None: 4 rotations for
            Vinyals; True/False; or a list of degrees). Glyphs: `seed`,
            `images_per_class`, `num_classes` (train, val, test). Folder:
            `image_size` (default 84), `channels` (3: RGB, default; 1:
            grey), `split_file` (JSON, CSV or CloserLook folder naming each
            split's classes), `cache_decoded`. Arrays: `split_file` only (no
            `image_size`: the examples are not images).

    Returns:
        A `FewShotSplit`: `class_names`, `num_classes`, `images(i)`,
        `num_images(i)`, `category_labels`.

    Raises:
        DataNotFoundError: `data_dir` is missing, or holds no known layout
            (the message lists the files each format needs); a split file
            names classes `data_dir` lacks (named).
        CorruptDataError: A file is truncated, corrupt or inconsistent;
            folder: files that are not images, empty class folders (all
            named in one error); a split file of the wrong form.
        OptionError: An option the dataset does not take, or `data_dir`
            for a generated dataset (a `ValueError`).
        ValueError: Unknown dataset name or split.

    Example:
        >>> split = mgaug_tf.data.load("tieredimagenet", "/data/tiered", "train")
        >>> split.num_classes, split.images(0).shape
        (351, (1300, 84, 84, 3))
        >>> mgaug_tf.data.load("glyphs", split="val").num_classes
        200
    """
    if tfds_source.is_tfds_name(name):
        return tfds_source.load(name, data_dir, canonical_split(split), **options)
    dataset = get_dataset(name)
    split = canonical_split(split)
    unknown = sorted(set(options) - set(dataset.options))
    if unknown:
        raise OptionError(f"Unknown option(s) {unknown} for {dataset.name}; it accepts "
                          f"{sorted(dataset.options)}.", dataset.name, unknown, dataset.options)
    if not dataset.needs_data_dir:
        if data_dir not in (None, ""):
            raise OptionError(f"{dataset.name} is generated and reads no files; pass "
                              f"data_dir=None (got {data_dir!r}).", dataset.name, ["data_dir"],
                              dataset.options)
        if dataset is SINUSOID:
            return sinusoid.load_tasks(split)
        return builtin.load_glyphs(split, **options)
    if data_dir in (None, ""):
        raise DataNotFoundError(f"{dataset.name} needs data_dir, the folder holding its files; "
                                "expected one of:\n" + _expected(dataset, split))
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataNotFoundError(f"data_dir {data_dir} does not exist or is not a folder.")
    for data_format in dataset.formats:
        paths = data_format.find(data_dir, split)
        if paths is not None:
            return data_format.read(paths, split, **options)
    raise DataNotFoundError(
        f"No {dataset.name} files for split {split!r} in {data_dir} (it holds: "
        f"{list_dir(data_dir)}). Expected one of:\n" + _expected(dataset, split))


def _expected(dataset, split):
    return "\n".join(f"  - {data_format.expected(split)}" for data_format in dataset.formats)
