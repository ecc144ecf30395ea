"""Builds `mini_imagenet` or `tiered_imagenet` from the user's files, offline.

    python -m mgaug_tf.data.tfds_builders mini_imagenet --manual_dir=/data/mini \\
        [--data_dir=~/tensorflow_datasets]

Writes `<data_dir>/<name>/1.0.0/` once; afterwards
`mgaug_tf.data.load("tfds:<name>", data_dir, split)` and
`tfds.load("<name>", data_dir=...)` read it anywhere.
"""

import argparse
import sys
from pathlib import Path

import tensorflow_datasets as tfds

from mgaug_tf.data.tfds_builders import MiniImagenet, TieredImagenet

BUILDERS = {"mini_imagenet": MiniImagenet, "tiered_imagenet": TieredImagenet}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("--manual_dir", required=True,
                        help="The folder holding your files (any layout of docs/data.md).")
    parser.add_argument("--data_dir", default=None,
                        help="TFDS data_dir to write to (default: $TFDS_DATA_DIR or "
                             "~/tensorflow_datasets).")
    args = parser.parse_args(argv)
    manual_dir = Path(args.manual_dir).expanduser()
    if not manual_dir.is_dir():
        parser.error(f"--manual_dir={manual_dir} does not exist or is not a folder.")
    builder = BUILDERS[args.name](
        data_dir=str(Path(args.data_dir).expanduser()) if args.data_dir else None)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    for split, info in builder.info.splits.items():
        print(f"{args.name} {split}: {info.num_examples} images")
    print(f"written to {builder.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
