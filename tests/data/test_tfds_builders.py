"""TFDS builders `mini_imagenet` / `tiered_imagenet` over the package's readers.

Each test layout is a tiny folder the test writes (all three splits); it is
prepared with `download_and_prepare(manual_dir=...)`, then read back in a
fresh process that never imports the builders: pixels, class names, order
and categories equal the raw reader's.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mgaug_tf.data import load
from mgaug_tf.data.tfds_builders import MiniImagenet, TieredImagenet
from mgaug_tf.data.tfds_builders.__main__ import main as build_main
from mgaug_tf.data.tfds_builders.few_shot import global_class_names
from tests.data.writers import (encode, random_images, write_npz_tiered, write_python2_pickle,
                                write_ravi_mini, write_ren_tiered)

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "val", "test")
CLASSES = {"train": 3, "val": 2, "test": 2}
PER_CLASS = 3


def _split_images(seed):
    """`{split: (uint8 [N, 84, 84, 3], global labels [N])}`, labels numbered across splits."""
    images, first = {}, 0
    for offset, split in enumerate(SPLITS):
        count = CLASSES[split] * PER_CLASS
        labels = first + np.arange(count) % CLASSES[split]  # classes interleaved
        images[split] = (random_images(count, 84, seed=seed + offset), labels)
        first += CLASSES[split]
    return images


def _wnid(label):
    return f"n{label:08d}"


def _mini_ravi(root):
    for split, (images, labels) in _split_images(1).items():
        classes = {}
        for image, label in zip(images, labels):
            classes.setdefault(_wnid(label), []).append(image)
        write_ravi_mini(root, split, classes)


def _mini_folders(root):
    for split, (images, labels) in _split_images(2).items():
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / ("validation" if split == "val" else split) / _wnid(label)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:03d}.png").write_bytes(encode(image))


def _mini_cache(root):
    root.mkdir(parents=True)
    for split, (images, labels) in _split_images(3).items():
        rows = {_wnid(label).encode(): np.flatnonzero(labels == label)
                for label in np.unique(labels)}
        write_python2_pickle({b"image_data": images, b"class_dict": rows},
                             root / f"mini-imagenet-cache-{split}.pkl")


def _mini_category(root):
    root.mkdir(parents=True)
    spelling = {"train": "train_phase_train", "val": "val", "test": "test"}
    for split, (images, labels) in _split_images(4).items():
        write_python2_pickle({b"data": images, b"labels": [int(x) for x in labels],
                              b"catname2label": {_wnid(x).encode(): int(x)
                                                 for x in np.unique(labels)}},
                             root / f"miniImageNet_category_split_{spelling[split]}.pickle")


def _tiered_ren(root):
    root.mkdir(parents=True)
    for split, (images, labels) in _split_images(5).items():
        local = labels - labels.min()
        names = [_wnid(x) for x in np.unique(labels)]
        write_ren_tiered(root, split, images, local, local % 2, names,
                         [f"{split}_category{c}" for c in range(2)])


def _tiered_npz(root):
    root.mkdir(parents=True)
    for split, (images, labels) in _split_images(6).items():
        write_npz_tiered(root, split, images, labels)


LAYOUTS = {
    "mini_ravi": ("mini_imagenet", "miniimagenet", _mini_ravi),
    "mini_folders": ("mini_imagenet", "miniimagenet", _mini_folders),
    "mini_cache_pickle": ("mini_imagenet", "miniimagenet", _mini_cache),
    "mini_category_pickle": ("mini_imagenet", "miniimagenet", _mini_category),
    "tiered_ren": ("tiered_imagenet", "tieredimagenet", _tiered_ren),
    "tiered_npz": ("tiered_imagenet", "tieredimagenet", _tiered_npz),
}

# Runs in a fresh Python: reads every prepared dataset back without the builders.
READER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow_datasets as tfds
    import mgaug_tf.data as data
    cases = json.loads(sys.argv[1])
    out = {}
    for case, (name, data_dir, target) in cases.items():
        arrays, meta = {}, {}
        for split in ("train", "val", "test"):
            few_shot = data.load("tfds:" + name, data_dir, split)
            for index in range(few_shot.num_classes):
                arrays[f"{split}_{index}"] = few_shot.images(index)
            meta[split] = {"class_names": list(few_shot.class_names),
                           "categories": None if few_shot.category_labels is None else
                           [few_shot.category_names[c] for c in few_shot.category_labels],
                           "dataset": few_shot.dataset}
        tfds_split = tfds.load(name, data_dir=data_dir, split="validation", download=False)
        meta["tfds_validation_examples"] = sum(1 for _ in tfds_split)
        np.savez(target, **arrays)
        out[case] = meta
    assert "mgaug_tf.data.tfds_builders" not in sys.modules, "builders were imported"
    assert not any(m.startswith("mgaug_tf.data.tfds_builders") for m in sys.modules)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Every layout written, prepared by its builder, and read back in one fresh process."""
    work = tmp_path_factory.mktemp("tfds_builders")
    cases = {}
    for case, (name, dataset, write) in LAYOUTS.items():
        manual_dir, data_dir = work / case / "manual", work / case / "tfds"
        write(manual_dir)
        if case == "mini_ravi":  # the command line
            assert build_main([name, f"--manual_dir={manual_dir}",
                               f"--data_dir={data_dir}"]) == 0
        else:
            builder = {"mini_imagenet": MiniImagenet,
                       "tiered_imagenet": TieredImagenet}[name](data_dir=str(data_dir))
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        cases[case] = (name, str(data_dir), str(work / f"{case}.npz"))
    result = subprocess.run([sys.executable, "-c", READER, json.dumps(cases)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    return work, cases, meta


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_read_back_in_a_fresh_process_equals_the_raw_reader(prepared, case):
    work, cases, meta = prepared
    _, dataset, _ = LAYOUTS[case]
    arrays = np.load(cases[case][2])
    for split in SPLITS:
        raw = load(dataset, work / case / "manual", split)
        assert meta[case][split]["dataset"] == dataset
        assert meta[case][split]["class_names"] == list(raw.class_names)
        assert raw.num_classes == CLASSES[split]
        raw_categories = None if raw.category_labels is None else \
            [raw.category_names[c] for c in raw.category_labels]
        assert meta[case][split]["categories"] == raw_categories
        for index in range(raw.num_classes):
            # Same pixels in the same order within the class.
            np.testing.assert_array_equal(arrays[f"{split}_{index}"], raw.images(index))
    assert meta[case]["tfds_validation_examples"] == CLASSES["val"] * PER_CLASS


def test_manual_dir_without_files_names_the_layouts(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "notes.txt").write_text("nothing here")
    builder = MiniImagenet(data_dir=str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match="train.csv"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=str(tmp_path / "manual")))


def test_global_class_names_are_unique():
    class Split:
        def __init__(self, names):
            self.class_names = tuple(names)

    splits = {"train": Split(["class0", "class1", "n01"]), "val": Split(["class0", "n02"]),
              "test": Split(["class0"])}
    assert global_class_names(splits) == ["train/class0", "class1", "n01", "val/class0", "n02",
                                          "test/class0"]
