"""The builders: one GeneratorBasedBuilder per benchmark, over the package's readers.

Each TFDS split is one few-shot split (`train`, `validation`, `test`), read
by `mgaug_tf.data.load(<dataset>, manual_dir, split)` (no second parser).
Every image is stored as the reader yields it (uint8 RGB, 84x84 unless the
files hold another size), PNG-encoded, so reading the dataset back gives the
raw reader's pixels exactly.

Features:
    image: uint8 `[H, W, 3]`, PNG.
    label: ClassLabel over the classes of all three splits (train's, then
        val's, then test's, each in the reader's order); names are the
        reader's class names (WordNet ids), prefixed with `<split>/` only
        where two splits name a class alike.
    index: int64, the image's position within its class in the reader's
        order (`FewShotSplit.images(c)[index]`), so that order is restored
        on reading.
    category (tieredImageNet only): Text, the class's category name, empty
        when the files name none (MetaOptNet/FEAT npz).
"""

import numpy as np
import tensorflow_datasets as tfds

from mgaug_tf.data.load import get_dataset, load as data_load
from mgaug_tf.data.formats import SPLITS

from mgaug_tf.data.tfds_source import BUILDER_SPLITS

_CITATIONS = {
    "miniimagenet": """@inproceedings{vinyals2016matching,
  title={Matching networks for one shot learning},
  author={Vinyals, Oriol and Blundell, Charles and Lillicrap, Timothy and Wierstra, Daan},
  booktitle={NeurIPS}, year={2016}}
@inproceedings{ravi2017optimization,
  title={Optimization as a model for few-shot learning},
  author={Ravi, Sachin and Larochelle, Hugo}, booktitle={ICLR}, year={2017}}""",
    "tieredimagenet": """@inproceedings{ren2018meta,
  title={Meta-learning for semi-supervised few-shot classification},
  author={Ren, Mengye and Triantafillou, Eleni and Ravi, Sachin and Snell, Jake and
          Swersky, Kevin and Tenenbaum, Joshua B and Larochelle, Hugo and Zemel, Richard S},
  booktitle={ICLR}, year={2018}}""",
}


def _instructions(dataset_name):
    """The manual-download instructions: every layout the reader accepts."""
    dataset = get_dataset(dataset_name)
    layouts = "\n".join(f"  - {data_format.expected(split)}" for data_format in dataset.formats
                        for split in SPLITS)
    return (f"Put your own {dataset.name} files in `manual_dir` (TFDS cannot download them), "
            f"in any layout mgaug_tf reads (docs/data.md), for all three splits:\n{layouts}\n"
            "Then: python -m mgaug_tf.data.tfds_builders "
            f"{'mini_imagenet' if dataset.name == 'miniimagenet' else 'tiered_imagenet'} "
            "--manual_dir=<that folder> --data_dir=<TFDS data_dir>")


def global_class_names(splits):
    """The ClassLabel names of the classes of `splits` (train, val, test order).

    A name used by more than one split (e.g. `class0` in files that number
    classes per split) is prefixed with its split, so every name is unique.
    """
    seen = {}
    for split in splits.values():
        for name in split.class_names:
            seen[name] = seen.get(name, 0) + 1
    return [name if seen[name] == 1 else f"{split_name}/{name}"
            for split_name, split in splits.items() for name in split.class_names]


class _FewShotBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A few-shot benchmark from the user's files; subclasses set `DATASET`."""

    DATASET = None  # the mgaug_tf.data.load name
    HAS_CATEGORY = False
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version: the package's readers' pixels, as PNG."}

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(),
            "index": np.int64,
        }
        if self.HAS_CATEGORY:
            features["category"] = tfds.features.Text()
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{get_dataset(self.DATASET).summary}, read from the user's own files "
                        "by mgaug_tf.data and stored as PNG.",
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            citation=_CITATIONS[self.DATASET],
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        splits = {split: data_load(self.DATASET, manual_dir, split) for split in SPLITS}
        self.info.features["label"].names = global_class_names(splits)
        generators, first_label = {}, 0
        for split_name, split in splits.items():
            generators[BUILDER_SPLITS[split_name]] = self._generate_examples(split, first_label)
            first_label += split.num_classes
        return generators

    def _generate_examples(self, split, first_label):
        for class_index, class_name in enumerate(split.class_names):
            category = ""
            if split.category_labels is not None:
                category_value = int(split.category_labels[class_index])
                category = (split.category_names[category_value] if split.category_names
                            else str(category_value))
            for index, image in enumerate(split.images(class_index)):
                example = {"image": image, "label": first_label + class_index, "index": index}
                if self.HAS_CATEGORY:
                    example["category"] = category
                yield f"{split.split}/{class_index:05d}/{index:06d}", example


class MiniImagenet(_FewShotBuilder):
    """miniImageNet (64/16/20 classes) from the user's files in any layout the package reads."""

    DATASET = "miniimagenet"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions("miniimagenet")


class TieredImagenet(_FewShotBuilder):
    """tieredImageNet (351/97/160 classes) from the user's Ren et al. or MetaOptNet files."""

    DATASET = "tieredimagenet"
    HAS_CATEGORY = True
    MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions("tieredimagenet")
