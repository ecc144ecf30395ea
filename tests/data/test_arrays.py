"""The `arrays` dataset and non-image splits: values and grouping against the files, episodes."""

import json

import numpy as np
import pytest

from mgaug_tf.data import CorruptDataError, FewShotSplit, episode_dataset, load


def _rows(count, shape, seed):
    """Distinct float rows: row i's first entry is i + 0.5 (identifies it), the rest random."""
    rows = np.random.default_rng(seed).normal(size=(count,) + shape)
    rows.reshape(count, -1)[:, 0] = np.arange(count) + 0.5
    return rows


def test_split_files_give_the_rows_of_each_label(tmp_path):
    x = _rows(30, (7, 3), seed=0).astype(np.float64)
    y = np.random.default_rng(1).permutation(np.repeat([12, 3, 7], 10))
    np.savez(tmp_path / "train.npz", x=x, y=y)
    split = load("arrays", tmp_path, "train")
    assert split.class_names == ("3", "7", "12")  # numeric order of int labels
    assert not split.is_image and split.image_shape is None
    assert split.example_shape == (7, 3) and split.strict_class_sizes
    assert "memory-mapped" in split.description
    for index, label in enumerate((3, 7, 12)):
        examples = split.examples(index)
        assert examples.dtype == np.float32
        np.testing.assert_array_equal(examples, x[y == label].astype(np.float32))


def test_string_labels_and_int_examples(tmp_path):
    x = np.arange(24 * 5, dtype=np.int16).reshape(24, 5)
    y = np.array(["wren", "owl", "crow"] * 8)
    np.savez_compressed(tmp_path / "validation.npz", x=x, y=y)
    split = load("arrays", tmp_path, "val")
    assert split.class_names == ("crow", "owl", "wren")
    np.testing.assert_array_equal(split.examples(1), x[y == "owl"].astype(np.float32))
    assert "in memory" in split.description  # a compressed npz cannot be mapped
    # uint8 arrays are values too, never rescaled as images would be.
    np.savez(tmp_path / "test.npz", x=np.full((6, 4, 4), 255, np.uint8), y=[0, 1] * 3)
    test = load("arrays", tmp_path, "test")
    assert not test.is_image and test.examples(0).max() == 255.0


def test_episodes_carry_exactly_the_rows_of_the_sampled_classes(tmp_path):
    x = _rows(60, (4, 2), seed=2)
    y = np.repeat(["a", "b", "c", "d", "e"], 12)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    split = load("arrays", tmp_path, "train")
    batches = episode_dataset(split, n_way=3, k_shot=2, k_query=3, meta_batch_size=2, seed=5)
    (support, support_labels, query), query_labels = next(iter(batches))
    assert support.shape == (2, 6, 4, 2) and query.shape == (2, 9, 4, 2)
    assert support.dtype == query.dtype == np.float32
    examples = np.concatenate([support, query], axis=1)
    labels = np.concatenate([support_labels, query_labels], axis=1)
    for task_examples, task_labels in zip(examples, labels):
        row_ids = np.floor(task_examples[:, 0, 0]).astype(int)
        assert len(set(row_ids)) == 15  # no row twice in a task
        # Each value is exactly the file's row (float32), unchanged.
        np.testing.assert_array_equal(task_examples, x[row_ids].astype(np.float32))
        for label in range(3):
            assert len(set(y[row_ids[task_labels == label]])) == 1
        assert len(set(y[row_ids])) == 3


def test_one_file_and_a_split_file(tmp_path):
    x = _rows(40, (6,), seed=3)
    y = np.repeat([0, 1, 2, 3], 10)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["3", "0"], "val": ["1"],
                                                      "test": ["2"]}))
    train = load("arrays", tmp_path, "train", split_file=tmp_path / "splits.json")
    assert train.class_names == ("0", "3")
    np.testing.assert_array_equal(train.examples(1), x[30:].astype(np.float32))
    (tmp_path / "splits.csv").write_text("class,split\n0,train\n1,test\n2,test\n")
    test = load("arrays", tmp_path, "test", split_file=tmp_path / "splits.csv")
    assert test.class_names == ("1", "2")
    np.testing.assert_array_equal(test.examples(0), x[10:20].astype(np.float32))
    with pytest.raises(CorruptDataError) as error:
        load("arrays", tmp_path, "val", split_file=tmp_path / "splits.csv")
    assert str(error.value) == (f"split_file {tmp_path / 'splits.csv'} names no class for the "
                                "'val' split.")


def test_a_split_file_naming_a_missing_label(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 2)), y=["a", "a", "b", "b"])
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["a", "z"]}))
    with pytest.raises(CorruptDataError) as error:
        load("arrays", tmp_path, "train", split_file=tmp_path / "splits.json")
    assert str(error.value) == (
        f"split_file {tmp_path / 'splits.json'} names 1 class of the 'train' split that no "
        f"label of {tmp_path / 'data.npz'} has: 'z' (its labels: 'a', 'b').")
    with pytest.raises(CorruptDataError, match="holds data.npz but no train.npz; one data.npz "
                                               "needs split_file"):
        load("arrays", tmp_path, "train")


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 2))), r"has no array 'y' \(it has \['x'\]\)"),
    (dict(y=[0, 1]), r"has no array 'x'"),
    (dict(x=np.zeros(4), y=[0, 0, 1, 1]), r"x must be \[N, ...\] with at least one axis per "
                                          r"example .*got shape \(4,\)"),
    (dict(x=np.zeros((4, 2)), y=[0, 1]),
     "y has 2 labels for 4 examples; each example needs one label"),
    (dict(x=np.zeros((4, 2)), y=[0.0, 0.0, 1.0, 1.0]), "labels must be integers or strings; "
                                                       "got dtype float64"),
    (dict(x=np.array([["a"], ["b"]]), y=[0, 1]), "x must be a numeric array"),
    (dict(x=np.zeros((2, 2)), y=np.array(["a", None], object)), "y is an object array"),
])
def test_bad_arrays_are_named(tmp_path, arrays, message):
    np.savez(tmp_path / "train.npz", **arrays)
    with pytest.raises(CorruptDataError, match=message):
        load("arrays", tmp_path, "train")


def test_short_class_named_with_its_count(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((11, 3)), y=[0] * 5 + [1] * 2 + [2] * 4)
    split = load("arrays", tmp_path, "train")
    with pytest.raises(ValueError, match=r"^1 class of arrays train has fewer than k_shot \+ "
                                         r"k_query = 1 \+ 2 = 3 examples: '1' \(2\)\."):
        episode_dataset(split, n_way=2, k_shot=1, k_query=2, meta_batch_size=1)


def test_image_settings_are_refused_for_non_image_splits():
    split = FewShotSplit.from_examples(np.zeros((20, 8)), np.repeat(["a", "b"], 10))
    assert split.class_names == ("a", "b") and split.example_shape == (8,)
    with pytest.raises(ValueError, match=r"image_size=28, but arrays train holds non-image "
                                         r"examples of shape \(8,\); pass image_size=None"):
        episode_dataset(split, 2, 1, 1, 1, image_size=28)
    with pytest.raises(ValueError, match="augment=True, but .* never augmented"):
        episode_dataset(split, 2, 1, 1, 1, augment=True)
    with pytest.raises(ValueError, match="normalize='imagenet', but"):
        episode_dataset(split, 2, 1, 1, 1, normalize="imagenet")
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['image_size'\] for arrays"):
        load("arrays", "/nowhere", "train", image_size=28)


class _RecordingArray(np.ndarray):
    """An array that records every index it is read with."""

    reads = []

    def __getitem__(self, key):
        _RecordingArray.reads.append(key)
        return super().__getitem__(key)


def test_an_episode_reads_only_its_rows():
    x = _rows(200, (16,), seed=4).view(_RecordingArray)
    split = FewShotSplit.from_examples(x, np.repeat(np.arange(10), 20))
    _RecordingArray.reads.clear()
    batches = episode_dataset(split, n_way=2, k_shot=1, k_query=2, meta_batch_size=1,
                              training=False, num_episodes=3)
    for (support, _, query), _ in batches:
        pass
    assert len(_RecordingArray.reads) == 3  # one indexed read per episode
    for key in _RecordingArray.reads:
        assert isinstance(key, np.ndarray) and key.dtype == np.int64 and key.shape == (6,)
