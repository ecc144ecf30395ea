"""TFDS builders for miniImageNet and tieredImageNet, from the user's own files.

TFDS has no builder for either benchmark (their images come from ImageNet and
are not downloadable). These builders read the files a user already has, in
every layout `mgaug_tf.data.load` accepts, by calling those readers, and write
them once as a TFDS dataset. Afterwards the dataset loads anywhere with only
the prepared folder: `tfds.load("mini_imagenet", data_dir=...)`, or
`mgaug_tf.data.load("tfds:mini_imagenet", data_dir, split)`; neither needs
this module.

Build (on the machine that has the files):

    python -m mgaug_tf.data.tfds_builders mini_imagenet \\
        --manual_dir=/data/mini --data_dir=~/tensorflow_datasets
    # or with TFDS's own command line:
    tfds build mini_imagenet --imports=mgaug_tf.data.tfds_builders \\
        --manual_dir=/data/mini --data_dir=~/tensorflow_datasets

Importing this package registers `mini_imagenet` and `tiered_imagenet` with
TFDS.
"""

from mgaug_tf.data.tfds_builders.few_shot import MiniImagenet, TieredImagenet

__all__ = ["MiniImagenet", "TieredImagenet"]
