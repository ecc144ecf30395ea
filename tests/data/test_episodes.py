"""`episode_dataset`: episode format, sampling rules, determinism, preprocessing, replicas."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf.data import FewShotSplit, episode_dataset
from mgaug_tf.data.episodes import eligible_classes
from tests.data.conftest import decode_ids, identifiable_split
from tests.data.writers import random_images


def _batches(dataset, count):
    return [tf.nest.map_structure(np.asarray, batch) for batch in dataset.take(count)]


def _episode_ids(batch):
    """Per task: (support ids [N*K, 2], query ids [N*Q, 2]) of an identifiable split."""
    (support, _, query), _ = batch
    return list(zip(decode_ids(support), decode_ids(query)))


def test_shapes_dtypes_and_labels():
    split = identifiable_split()
    batch = _batches(episode_dataset(split, n_way=3, k_shot=2, k_query=3, meta_batch_size=4), 1)
    (support, support_labels, query), query_labels = batch[0]
    assert support.shape == (4, 6, 8, 8, 3) and support.dtype == np.float32
    assert query.shape == (4, 9, 8, 8, 3) and query.dtype == np.float32
    assert support_labels.dtype == np.int32 and query_labels.dtype == np.int32
    np.testing.assert_array_equal(support_labels, np.tile([0, 0, 1, 1, 2, 2], (4, 1)))
    np.testing.assert_array_equal(query_labels, np.tile(np.repeat([0, 1, 2], 3), (4, 1)))
    assert 0 <= support.min() and support.max() <= 1


def test_episodes_are_balanced_disjoint_and_consistent():
    split = identifiable_split(num_classes=7, images_per_class=9)
    batches = _batches(episode_dataset(split, 4, 2, 3, meta_batch_size=5, seed=11), 6)
    for batch in batches:
        (_, support_labels, _), query_labels = batch
        for task, (support_ids, query_ids) in enumerate(_episode_ids(batch)):
            classes = []
            for label in range(4):
                in_support = support_ids[support_labels[task] == label]
                in_query = query_ids[query_labels[task] == label]
                assert len(in_support) == 2 and len(in_query) == 3      # balanced
                members = np.concatenate([in_support, in_query])
                assert len(set(members[:, 0])) == 1                     # one class per label
                assert len({tuple(m) for m in members}) == 5            # no image twice
                classes.append(members[0, 0])
            assert len(set(classes)) == 4                               # N distinct classes


def test_labels_are_shuffled_per_episode():
    split = identifiable_split(num_classes=5)
    batches = _batches(episode_dataset(split, 5, 1, 1, meta_batch_size=10, seed=2), 4)
    label_zero_classes = [ids[0][0, 0] for batch in batches for ids in _episode_ids(batch)]
    # All classes took label 0 at some point: the label -> class map is random.
    assert set(label_zero_classes) == set(range(5))


def test_classes_too_small_for_k_plus_q_are_never_drawn():
    split = identifiable_split(sizes=[4, 9, 9, 9])
    batches = _batches(episode_dataset(split, 3, 2, 3, meta_batch_size=8), 3)
    drawn = {int(c) for batch in batches for ids in _episode_ids(batch)
             for c in np.concatenate(ids)[:, 0]}
    assert drawn == {1, 2, 3}


def test_evaluation_episodes_repeat_for_a_seed():
    split = identifiable_split()

    def run(seed, batch_size=3):
        dataset = episode_dataset(split, 3, 1, 2, batch_size, training=False, seed=seed,
                                  num_episodes=7)
        return [np.concatenate([np.asarray(t) for t in tf.nest.flatten(batch)[:1]])
                for batch in dataset]

    first, again, other = run(5), run(5), run(6)
    assert [len(b) for b in first] == [3, 3, 1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    # Episode i does not depend on how episodes are batched.
    np.testing.assert_array_equal(np.concatenate(run(5, batch_size=7)), np.concatenate(first))


def test_training_stream_is_reproducible_and_varied():
    split = identifiable_split()
    first = _batches(episode_dataset(split, 3, 1, 2, 4, seed=9), 2)
    again = _batches(episode_dataset(split, 3, 1, 2, 4, seed=9), 2)
    for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(again)):
        np.testing.assert_array_equal(a, b)
    tasks = {tuple(map(tuple, np.concatenate(ids))) for batch in first
             for ids in _episode_ids(batch)}
    assert len(tasks) == 8


@pytest.mark.parametrize("settings,message", [
    (dict(n_way=5, k_shot=1, k_query=4), r"has 3 classes with at least k_shot \+ k_query = "
                                         r"1 \+ 4 = 5 images.*n_way=5 needs 5"),
    (dict(n_way=3, k_shot=3, k_query=4), r"has 0 classes .* = 7 images"),
    (dict(n_way=1, k_shot=1, k_query=1), r"n_way must be an int >= 2"),
    (dict(n_way=2, k_shot=0, k_query=1), r"k_shot must be an int >= 1"),
    (dict(n_way=2, k_shot=1, k_query=1, training=False), r"needs num_episodes"),
    (dict(n_way=2, k_shot=1, k_query=1, image_size=(8,)), r"image_size must be"),
    (dict(n_way=2, k_shot=1, k_query=1, normalize="imagenet", split=1),
     r"normalize needs 1 mean.*1-channel"),
    (dict(n_way=2, k_shot=1, k_query=1, augment={"flip": True}), r"augment option.*'flip'"),
    (dict(n_way=2, k_shot=1, k_query=1, seed=None), r"seed must be an int"),
])
def test_bad_settings_are_named(settings, message):
    split = identifiable_split(sizes=[5, 6, 5, 2])
    if settings.pop("split", None):
        split = FewShotSplit.from_arrays(np.zeros((8, 4, 4), np.uint8), np.arange(8) % 2)
    with pytest.raises(ValueError, match=message):
        episode_dataset(split, meta_batch_size=2, **settings)


def _photo_split():
    images = random_images(24, 16, seed=3)
    return FewShotSplit.from_arrays(images, np.arange(24) % 4, default_augment=True), images


def _plain(split, **kwargs):
    (support, _, _), _ = next(iter(episode_dataset(split, 4, 2, 1, 2, augment=None, seed=4,
                                                   **kwargs)))
    return np.asarray(support)


def test_flip_only_mirrors_some_images():
    split, _ = _photo_split()
    plain = _plain(split)
    (flipped, _, _), _ = next(iter(episode_dataset(
        split, 4, 2, 1, 2, seed=4,
        augment={"random_resized_crop": False, "color_jitter": 0.0})))
    flipped = np.asarray(flipped).reshape((-1,) + plain.shape[2:])
    plain = plain.reshape(flipped.shape)
    same = [np.allclose(f, p, atol=1e-5) for f, p in zip(flipped, plain)]
    mirrored = [np.allclose(f, p[:, ::-1], atol=1e-5) for f, p in zip(flipped, plain)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)


def test_full_box_crop_is_the_identity_and_jitter_changes_colours():
    split, _ = _photo_split()
    plain = _plain(split)
    options = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "horizontal_flip": False}
    (cropped, _, _), _ = next(iter(episode_dataset(
        split, 4, 2, 1, 2, seed=4, augment=dict(options, color_jitter=0.0))))
    np.testing.assert_allclose(cropped, plain, atol=1e-5)
    (jittered, _, _), _ = next(iter(episode_dataset(
        split, 4, 2, 1, 2, seed=4, augment=dict(options, color_jitter=0.4))))
    jittered = np.asarray(jittered)
    assert np.abs(jittered - plain).mean() > 0.01 and 0 <= jittered.min() <= jittered.max() <= 1


def test_auto_augment_follows_the_split_and_evaluation_centre_crops():
    split, _ = _photo_split()
    train_view = _plain(split)
    (augmented, _, _), _ = next(iter(episode_dataset(split, 4, 2, 1, 2, seed=4)))
    assert not np.allclose(augmented, train_view)
    (evaluated, _, _), _ = next(iter(episode_dataset(split, 4, 2, 1, 2, seed=4, training=False,
                                                     num_episodes=2)))
    # Evaluation: resize 16 -> 18 (x1.15), centre crop 16: close to, not equal to, the image.
    evaluated = np.asarray(evaluated)
    assert evaluated.shape == train_view.shape
    assert 0 < np.abs(evaluated - train_view).mean() < 0.1
    glyph_like = identifiable_split()  # default_augment False: "auto" leaves it untouched
    (support, _, _), _ = next(iter(episode_dataset(glyph_like, 3, 1, 1, 1)))
    assert set(np.round(np.asarray(support) * 255).ravel()) <= set(range(8))


def test_normalize_and_resize():
    split, _ = _photo_split()
    plain = _plain(split)
    normalized = _plain(split, normalize="imagenet")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(normalized, (plain - mean) / std, atol=1e-5)
    assert _plain(split, image_size=(10, 12)).shape == (2, 8, 10, 12, 3)


def test_input_contexts_split_the_episodes():
    split = identifiable_split()

    def episodes(context, batch):
        dataset = episode_dataset(split, 3, 1, 2, batch, training=False, num_episodes=6,
                                  input_context=context, seed=1)
        return [decode_ids(np.asarray(b[0][0]))[i] for b in dataset for i in range(len(b[1]))]

    whole = episodes(None, 4)
    contexts = [tf.distribute.InputContext(2, index, 2) for index in range(2)]
    parts = [episodes(context, 4) for context in contexts]
    assert [len(p) for p in parts] == [3, 3]
    for index, part in enumerate(parts):  # pipeline i takes episodes i, i+2, i+4
        for position, episode in enumerate(part):
            np.testing.assert_array_equal(episode, whole[index + 2 * position])
    # Per-replica batch: meta_batch_size / replicas in sync.
    dataset = episode_dataset(split, 3, 1, 2, 4, input_context=contexts[0])
    assert next(iter(dataset))[1].shape == (2, 6)
    with pytest.raises(ValueError, match="meta_batch_size=3 must be divisible by the 2"):
        episode_dataset(split, 3, 1, 2, 3, input_context=contexts[0])


_TWO_REPLICAS = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mgaug_tf.data import episode_dataset
from tests.data.conftest import decode_ids, identifiable_split

split = identifiable_split(num_classes=8)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
dataset = strategy.distribute_datasets_from_function(
    lambda context: episode_dataset(split, 3, 1, 2, 4, seed=3, input_context=context))
(support, labels, query), query_labels = next(iter(dataset))
replicas = [decode_ids(np.asarray(t)).tolist()
            for t in strategy.experimental_local_results(support)]
shapes = [list(t.shape) for t in strategy.experimental_local_results(query_labels)]
whole = next(iter(episode_dataset(split, 3, 1, 2, 4, seed=3)))
print(json.dumps({"replicas": replicas, "shapes": shapes,
                  "whole": decode_ids(np.asarray(whole[0][0])).tolist()}))
"""


def test_two_replicas_get_different_tasks():
    root = Path(__file__).resolve().parents[2]  # `python -c` imports `tests` from its folder
    result = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], cwd=root,
                            capture_output=True, text=True, timeout=240,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["shapes"] == [[2, 6], [2, 6]]
    first, second = output["replicas"]
    tasks = [json.dumps(task) for task in first + second]
    assert len(set(tasks)) == 4  # every replica task is a different episode
    # Together the replicas see exactly the episodes of one undistributed batch.
    assert sorted(tasks) == sorted(json.dumps(task) for task in output["whole"])


def test_more_than_ten_short_classes_are_counted_after_the_first_ten():
    names = list("abcdefghijkl")  # 12 classes of 1 example, then 2 of 2
    labels = names + ["y", "y", "z", "z"]
    split = FewShotSplit.from_examples(np.zeros((len(labels), 2)), labels)
    with pytest.raises(ValueError) as info:
        eligible_classes(split, 2, 1, 1)
    assert str(info.value) == (
        "12 classes of arrays train have fewer than k_shot + k_query = 1 + 1 = 2 examples: "
        "'a' (1), 'b' (1), 'c' (1), 'd' (1), 'e' (1), 'f' (1), 'g' (1), 'h' (1), 'i' (1), "
        "'j' (1) and 2 more. Add examples to them, remove them from the split, or lower k_shot "
        "or k_query.")
