"""Few-shot data: read benchmark files as users have them, sample episodes.

Public API:
    `load(name, data_dir, split, **options) -> FewShotSplit`: one split of
        tieredImageNet, miniImageNet, Omniglot, CUB, CIFAR-FS, FC100 (format
        detected from the files), the built-in `glyphs`, or your own data:
        `folder` (images in class folders) and `arrays` (non-image examples
        in `.npz` files, fed to the learner as float32 unchanged).
    `episode_dataset(split, n_way, k_shot, k_query, meta_batch_size, ...)`:
        a `tf.data.Dataset` of episode batches
        `((support_images, support_labels, query_images), query_labels)`.
    `available_datasets()`: the names `load` accepts.
    `FewShotSplit`, `AugmentOptions`, `DataNotFoundError`, `CorruptDataError`,
    `OptionError`.

Example:
    >>> import mgaug_tf.data as data
    >>> train = data.load("glyphs", split="train")
    >>> batches = data.episode_dataset(train, n_way=5, k_shot=1, k_query=15,
    ...                                meta_batch_size=4, image_size=28)
"""

from mgaug_tf.data.episodes import episode_dataset
from mgaug_tf.data.errors import CorruptDataError, DataNotFoundError, OptionError
from mgaug_tf.data.load import available_datasets, load
from mgaug_tf.data.preprocess import AugmentOptions
from mgaug_tf.data.split import FewShotSplit

__all__ = ["AugmentOptions", "CorruptDataError", "DataNotFoundError", "FewShotSplit",
           "OptionError", "available_datasets", "episode_dataset", "load"]
