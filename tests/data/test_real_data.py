"""The real files in ../shared/data load with the published split sizes."""

import csv

import numpy as np
import pytest

from mgaug_tf.data import episode_dataset, load


@pytest.mark.parametrize("split,characters", [("train", 1028), ("val", 172), ("test", 423)])
def test_omniglot_vinyals_split_sizes(omniglot_dir, split, characters):
    assert load("omniglot", omniglot_dir, split, rotations=False).num_classes == characters
    rotated = load("omniglot", omniglot_dir, split)
    assert rotated.num_classes == 4 * characters
    assert {rotated.num_images(i) for i in range(0, rotated.num_classes, 97)} == {20}


def test_omniglot_images_and_episodes(omniglot_dir):
    split = load("omniglot", omniglot_dir, "test")
    images = split.images(0)
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    assert images.mean() < 80 and images.max() == 255  # bright strokes on black
    np.testing.assert_array_equal(split.images(1), np.rot90(images, 1, axes=(1, 2)))
    (support, _, query), labels = next(iter(episode_dataset(split, 5, 1, 5, 2, training=False,
                                                            num_episodes=2)))
    assert support.shape == (2, 5, 28, 28, 1) and query.shape == (2, 25, 28, 28, 1)


def test_omniglot_background_evaluation_sizes(omniglot_dir):
    assert load("omniglot", omniglot_dir, "train",
                split_scheme="background_evaluation").num_classes == 964
    assert load("omniglot", omniglot_dir, "test",
                split_scheme="background_evaluation").num_classes == 659


@pytest.mark.parametrize("split,classes", [("train", 64), ("val", 16), ("test", 20)])
def test_miniimagenet_subset_matches_ravi_split(mini_subset_dir, shared_data, split, classes):
    loaded = load("miniimagenet", mini_subset_dir, split)
    assert loaded.num_classes == classes
    with open(shared_data / "splits" / "miniimagenet_ravi" / f"{split}.csv") as handle:
        published = {row["label"] for row in csv.DictReader(handle)}
    assert set(loaded.class_names) == published
    assert {loaded.num_images(i) for i in range(classes)} == {20}


def test_miniimagenet_subset_images_and_episodes(mini_subset_dir):
    split = load("miniimagenet", mini_subset_dir, "test")
    images = split.images(3)
    assert images.shape == (20, 84, 84, 3) and images.dtype == np.uint8
    assert images.std() > 20  # real photographs, not blank
    (support, _, query), labels = next(iter(episode_dataset(split, 5, 1, 15, 2, training=False,
                                                            num_episodes=2)))
    assert support.shape == (2, 5, 84, 84, 3) and query.shape == (2, 75, 84, 84, 3)
