"""CUB-200-2011 (class folders, json lists) and CIFAR-FS / FC100 pickles."""

import json

import numpy as np
import pytest

from mgaug_tf.data import DataNotFoundError, load
from mgaug_tf.data.cifar import CIFAR100_SUPERCLASSES, FINE_NAMES
from mgaug_tf.data.cub import cub_split_rule
from tests.data.writers import encode, random_images, write_json, write_python2_pickle

CUB_CLASSES = [f"{i:03d}.Bird_{i}" for i in range(1, 9)]  # sorted index 0..7


def _write_cub(root, sizes=(60, 90)):
    images = {}
    rng = np.random.default_rng(0)
    for index, name in enumerate(CUB_CLASSES):
        folder = root / "CUB_200_2011" / "images" / name
        folder.mkdir(parents=True)
        images[name] = []
        for number in range(3):
            height, width = sizes[(index + number) % 2], sizes[(index + number + 1) % 2]
            image = random_images(1, max(height, width), seed=int(rng.integers(1e6)))[0]
            image = np.ascontiguousarray(image[:height, :width])
            (folder / f"{name[4:]}_{number:04d}.png").write_bytes(encode(image))
            images[name].append(image)
    return images


def test_cub_split_rule_matches_the_published_lists(shared_data):
    lists = shared_data / "splits" / "cub_torchmeta"
    published = {split: json.loads((lists / f"{split}.json").read_text())
                 for split in ("train", "val", "test")}
    classes = sorted(name for names in published.values() for name in names)
    assert len(classes) == 200
    for split, names in published.items():
        assert [c for i, c in enumerate(classes) if cub_split_rule(i, split)] == sorted(names)


def test_cub_folders_follow_the_rule_and_resize(tmp_path):
    images = _write_cub(tmp_path)
    splits = {split: load("cub", tmp_path, split, image_size=60)
              for split in ("train", "val", "test")}
    assert splits["train"].class_names == tuple(CUB_CLASSES[0::2])
    assert splits["val"].class_names == (CUB_CLASSES[1], CUB_CLASSES[5])
    assert splits["test"].class_names == (CUB_CLASSES[3], CUB_CLASSES[7])
    loaded = splits["val"].images(1)
    assert loaded.shape == (3, 60, 60, 3)
    # Images already 60x60 are untouched; others are resized.
    for number, image in enumerate(images[CUB_CLASSES[5]]):
        if image.shape[:2] == (60, 60):
            np.testing.assert_array_equal(loaded[number], image)
    assert load("cub", tmp_path / "CUB_200_2011", "train").images(0).shape == (3, 84, 84, 3)


def test_cub_json_lists(tmp_path):
    images = _write_cub(tmp_path / "elsewhere", sizes=(84, 84))
    root = tmp_path / "elsewhere" / "CUB_200_2011" / "images"
    names = [str(root / CUB_CLASSES[c] / f"{CUB_CLASSES[c][4:]}_{n:04d}.png")
             for c in (6, 2) for n in range(3)]
    write_json(tmp_path / "novel.json", {"label_names": CUB_CLASSES, "image_names": names,
                                         "image_labels": [6, 6, 6, 2, 2, 2]})
    split = load("cub", tmp_path, "test")
    assert split.description == "CUB json list novel.json"
    assert split.class_names == (CUB_CLASSES[2], CUB_CLASSES[6])
    np.testing.assert_array_equal(split.images(1), np.stack(images[CUB_CLASSES[6]]))


def test_cub_json_missing_image_is_named(tmp_path):
    write_json(tmp_path / "base.json", {"label_names": ["a"], "image_labels": [0],
                                        "image_names": ["/elsewhere/images/a/1.jpg"]})
    with pytest.raises(DataNotFoundError, match="/elsewhere/images/a/1.jpg"):
        load("cub", tmp_path, "train")


def test_cifar100_tables_match_the_published_pairs(shared_data):
    pairs = set()
    for split in ("train", "val", "test"):
        path = shared_data / "splits" / "cifar_fs_torchmeta" / f"{split}.json"
        pairs |= {tuple(pair) for pair in json.loads(path.read_text())}
    assert pairs == {(superclass, fine) for superclass, fines in CIFAR100_SUPERCLASSES.items()
                     for fine in fines}
    fc100 = set()
    for split in ("train", "val", "test"):
        path = shared_data / "splits" / "fc100_torchmeta" / f"{split}.json"
        fc100 |= set(json.loads(path.read_text()))
    assert fc100 == set(CIFAR100_SUPERCLASSES)


@pytest.mark.parametrize("name,prefix", [("cifar_fs", "CIFAR_FS"), ("fc100", "FC100")])
def test_cifar_pickles(tmp_path, name, prefix):
    images = random_images(8, 32, seed=7)
    fine_ids = [95, 4, 95, 55, 4, 55, 95, 4]  # whale, beaver, otter: aquatic mammals
    write_python2_pickle({b"data": images, b"labels": fine_ids},
                         tmp_path / f"{prefix}_validation.pickle")
    split = load(name, tmp_path, "val")
    assert split.class_names == ("beaver", "otter", "whale")
    assert FINE_NAMES[4] == "beaver" and FINE_NAMES[95] == "whale"
    assert [split.category_names[c] for c in split.category_labels] == ["aquatic_mammals"] * 3
    np.testing.assert_array_equal(split.images(2), images[[0, 2, 6]])
    np.testing.assert_array_equal(split.images(0), images[[1, 4, 7]])
