"""Fake TFDS-prepared datasets for the tests, offline (`tfds.testing.mock_data`).

`mock_prepared` writes the dataset's metadata (`dataset_info.json`, label
names, split sizes) as `tfds build` would, and serves the given examples
through TFDS's own example serialisation and parsing (with whatever
`decoders` the reader passes, `PartialDecoding` and `SkipDecoding` included),
so the reader sees what it would read from real TFRecords. TFDS's default
mock examples have uniform random labels; these are the examples we supply.
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image


def png(image):
    """PNG bytes of a uint8 `[H, W]` (grey), `[H, W, 1]` or `[H, W, 3]` image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def _as_dataset_fn(examples_by_split):
    serialized_cache = {}

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del read_config, shuffle_files
        name = str(split)
        if name not in serialized_cache:
            serialized_cache[name] = [self.info.features.serialize_example(example)
                                      for example in examples_by_split[name]]
        features = self.info.features
        if isinstance(decoders, tfds.decode.PartialDecoding):
            features = decoders.extract_features(features)
            decoders = decoders.decoders
        records = tf.data.Dataset.from_tensor_slices(
            tf.constant(serialized_cache[name], tf.string))
        return records.map(lambda record: features.deserialize_example(record,
                                                                       decoders=decoders))

    return as_dataset


@contextlib.contextmanager
def mock_prepared(name, data_dir, examples_by_split, label_names=None):
    """TFDS dataset `name` looks prepared in `data_dir`, holding these examples.

    Args:
        name: A TFDS dataset with code in TFDS (`omniglot`, `cifar100`, ...).
        data_dir: A folder (the metadata is written there).
        examples_by_split: `{tfds split name: [feature dicts]}`.
        label_names: `{ClassLabel feature: names}` stored as at build time.
    """
    builder = tfds.builder(name, data_dir=str(data_dir))
    for feature, names in (label_names or {}).items():
        builder.info.features[feature].names = list(names)
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=[len(examples)], num_bytes=0)
        for split, examples in examples_by_split.items()]))
    Path(builder.data_dir).mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(data_dir),
                                as_dataset_fn=_as_dataset_fn(examples_by_split)):
        yield
