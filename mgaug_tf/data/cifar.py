"""CIFAR-FS and FC100 readers: `{CIFAR_FS,FC100}_{split}.pickle`.

Each pickle holds `data` (uint8 [N, 32, 32, 3] RGB) and `labels` (CIFAR-100
fine ids); classes are re-indexed per split. Names and superclasses come from
the CIFAR-100 hierarchy below, so `category_labels` is the superclass.
"""

import numpy as np

from mgaug_tf.data.errors import CorruptDataError
from mgaug_tf.data.formats import Dataset, Format, check_image_size
from mgaug_tf.data.pickles import load_pickle, require_keys
from mgaug_tf.data.sources import ArraySource
from mgaug_tf.data.split import FewShotSplit, group_by_label

# CIFAR-100's 20 superclasses and their 5 fine classes each. Fine ids number
# the 100 fine names in alphabetical order (CIFAR-100's own numbering).
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant",
                                       "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
SUPERCLASS_NAMES = sorted(CIFAR100_SUPERCLASSES)
FINE_NAMES = sorted(name for names in CIFAR100_SUPERCLASSES.values() for name in names)
SUPERCLASS_OF = {fine: SUPERCLASS_NAMES.index(superclass)
                 for superclass, names in CIFAR100_SUPERCLASSES.items() for fine in names}

# The published class splits, carried here because users have only CIFAR-100
# itself (e.g. prepared by TFDS). CIFAR-FS: Bertinetto et al., "Meta-learning
# with differentiable closed-form solvers" (ICLR 2019), 64 / 16 / 20 fine
# classes. FC100: Oreshkin et al., "TADAM" (NeurIPS 2018), 12 / 4 / 4
# superclasses, i.e. 60 / 20 / 20 fine classes.
CIFAR_FS_CLASSES = {
    "train": ("apple", "aquarium_fish", "bear", "bee", "bottle", "bowl", "boy", "bridge", "bus",
              "can", "castle", "caterpillar", "chair", "clock", "cloud", "cockroach", "couch",
              "cup", "dinosaur", "dolphin", "elephant", "forest", "girl", "hamster", "house",
              "kangaroo", "keyboard", "lawn_mower", "lion", "lizard", "lobster", "mountain",
              "mouse", "mushroom", "oak_tree", "orange", "orchid", "palm_tree", "pear",
              "pine_tree", "plate", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
              "seal", "shrew", "skunk", "skyscraper", "snake", "spider", "squirrel", "streetcar",
              "sunflower", "tank", "tiger", "train", "trout", "tulip", "turtle", "willow_tree",
              "wolf"),
    "val": ("beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish",
            "lamp", "maple_tree", "motorcycle", "otter", "sea", "shark", "television", "tractor"),
    "test": ("baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck",
             "plain", "poppy", "rocket", "rose", "snail", "sweet_pepper", "table", "telephone",
             "wardrobe", "whale", "woman", "worm"),
}
FC100_SUPERCLASSES = {
    "train": ("fish", "flowers", "food_containers", "fruit_and_vegetables",
              "household_electrical_devices", "household_furniture",
              "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "reptiles", "trees",
              "vehicles_1", "vehicles_2"),
    "val": ("large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates",
            "small_mammals"),
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
}


def split_classes(dataset, split):
    """The CIFAR-100 fine class names of a CIFAR-FS or FC100 split, sorted.

    Args:
        dataset: `"cifar_fs"` or `"fc100"`.
        split: `"train"`, `"val"` or `"test"`.

    Returns:
        A sorted tuple of fine names (64/16/20 for CIFAR-FS, 60/20/20 for FC100).

    Example:
        >>> len(split_classes("fc100", "val"))
        20
    """
    if dataset == "cifar_fs":
        return tuple(sorted(CIFAR_FS_CLASSES[split]))
    if dataset == "fc100":
        return tuple(sorted(fine for superclass in FC100_SUPERCLASSES[split]
                            for fine in CIFAR100_SUPERCLASSES[superclass]))
    raise ValueError(f"dataset={dataset!r}; use 'cifar_fs' or 'fc100'.")


def _reader(dataset):
    def read(paths, split, image_size=None):
        (path,) = paths
        data = require_keys(load_pickle(path), ["data", "labels"], path)
        images = np.asarray(data["data"])
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise CorruptDataError(f"{path}: 'data' is {images.dtype} {images.shape}; "
                                   "expected uint8 [N, 32, 32, 3] RGB.")
        label_values, class_items = group_by_label(data["labels"], len(images), path)
        if label_values.min() < 0 or label_values.max() >= len(FINE_NAMES):
            raise CorruptDataError(f"{path}: labels span {label_values.min()}.."
                                   f"{label_values.max()}; expected CIFAR-100 fine ids 0..99.")
        class_names = [FINE_NAMES[value] for value in label_values]
        return FewShotSplit(dataset, split, class_names, class_items,
                            ArraySource(images, image_size=check_image_size(image_size)),
                            category_labels=[SUPERCLASS_OF[name] for name in class_names],
                            category_names=SUPERCLASS_NAMES,
                            description=f"pickle {path.name}")
    return read


CIFAR_FS = Dataset(
    name="cifar_fs",
    aliases=("cifarfs",),
    formats=(Format("CIFAR-FS pickle", ("CIFAR_FS_{split}.pickle",), _reader("cifar_fs")),),
    options={"image_size": None},
    summary="CIFAR-FS, 64/16/20 CIFAR-100 classes (CIFAR_FS_{split}.pickle)",
    native_size=32,
)
FC100 = Dataset(
    name="fc100",
    aliases=(),
    formats=(Format("FC100 pickle", ("FC100_{split}.pickle",), _reader("fc100")),),
    options={"image_size": None},
    summary="FC100, 60/20/20 CIFAR-100 classes split by superclass (FC100_{split}.pickle)",
    native_size=32,
)
