"""tieredImageNet: Ren et al. PNG pickles and MetaOptNet/FEAT npz."""

import numpy as np
import pytest

from mgaug_tf.data import CorruptDataError, load
from tests.data.writers import (encode, random_images, write_npz_tiered,
                                write_python2_pickle, write_ren_tiered)

CLASS_NAMES = ["n01530575", "n01531178", "n01532829", "n02099267"]
CATEGORY_NAMES = ["n01524359", "n02098550"]


def _tiered_source(seed=0, per_class=(5, 3, 4, 6), size=84):
    images = random_images(sum(per_class), size, seed=seed)
    labels = np.repeat(np.arange(len(per_class)), per_class)
    # Interleave the classes, as a real file does not group them.
    order = np.random.default_rng(seed).permutation(len(labels))
    return images[order], labels[order]


def _expected_class(images, labels, label):
    return images[labels == label]


@pytest.mark.parametrize("python2", [True, False], ids=["python2-in-place", "python3-unpickled"])
def test_ren_pickles_give_the_source_pixels_and_classes(tmp_path, python2):
    images, labels = _tiered_source()
    categories = np.array([0, 0, 0, 1])[labels]
    write_ren_tiered(tmp_path, "train", images, labels, categories, CLASS_NAMES,
                     CATEGORY_NAMES, python2=python2)
    split = load("tieredimagenet", tmp_path, "train")
    assert split.class_names == tuple(CLASS_NAMES)
    assert split.category_labels.tolist() == [0, 0, 0, 1]
    assert split.category_names == tuple(CATEGORY_NAMES)
    assert ("memory-mapped" in split.description) == python2
    for label in range(4):
        np.testing.assert_array_equal(split.images(label), _expected_class(images, labels, label))
        assert split.num_images(label) == (labels == label).sum()


def test_ren_pickles_resize_to_image_size(tmp_path):
    images, labels = _tiered_source(size=40)
    write_ren_tiered(tmp_path, "test", images, labels, np.zeros_like(labels), CLASS_NAMES,
                     CATEGORY_NAMES[:1])
    split = load("tiered", tmp_path, "test")
    assert split.images(2).shape == (4, 84, 84, 3)
    assert load("tiered", tmp_path, "test", image_size=40).images(2).shape == (4, 40, 40, 3)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored-mmap", "compressed"])
def test_npz_is_bgr_converted_and_offset_labels_reindexed(tmp_path, compressed):
    images, labels = _tiered_source(seed=3)
    # Val labels follow train's 351 classes in this format.
    write_npz_tiered(tmp_path, "val", images, labels + 351, compressed=compressed)
    split = load("tieredimagenet", tmp_path, "validation")
    assert split.num_classes == 4
    assert split.class_names == ("class351", "class352", "class353", "class354")
    assert split.category_labels is None
    assert ("memory-mapped" in split.description) == (not compressed)
    for label in range(4):
        np.testing.assert_array_equal(split.images(label), _expected_class(images, labels, label))


def test_npz_files_are_found_under_the_validation_spelling(tmp_path):
    images, labels = _tiered_source(seed=4)
    write_npz_tiered(tmp_path, "validation", images, labels)
    split = load("tieredimagenet", tmp_path, "val")
    np.testing.assert_array_equal(split.images(1), _expected_class(images, labels, 1))


def test_truncated_npz_names_the_file(tmp_path):
    images, labels = _tiered_source()
    npz_path, _ = write_npz_tiered(tmp_path, "train", images, labels)
    npz_path.write_bytes(npz_path.read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match="train_images.npz"):
        load("tieredimagenet", tmp_path, "train")


def test_truncated_png_pickle_names_the_file(tmp_path):
    images, labels = _tiered_source()
    images_path, _ = write_ren_tiered(tmp_path, "train", images, labels, labels, CLASS_NAMES,
                                      CLASS_NAMES)
    images_path.write_bytes(images_path.read_bytes()[:-3000])
    with pytest.raises(CorruptDataError, match="train_images_png.pkl"):
        load("tieredimagenet", tmp_path, "train")


def test_image_that_fails_to_decode_names_the_item(tmp_path):
    images, labels = _tiered_source(per_class=(3, 3), seed=5)
    arrays = [np.frombuffer(encode(image), np.uint8).reshape(-1, 1) for image in images]
    broken = bytearray(arrays[4].tobytes())
    broken[60:] = b"\x00" * (len(broken) - 60)  # PNG header intact, pixel data destroyed
    arrays[4] = np.frombuffer(bytes(broken), np.uint8).reshape(-1, 1)
    write_python2_pickle(arrays, tmp_path / "train_images_png.pkl")
    write_python2_pickle({b"label_specific": labels}, tmp_path / "train_labels.pkl")
    split = load("tieredimagenet", tmp_path, "train")
    with pytest.raises(CorruptDataError, match=r"#4 of .*train_images_png.pkl"):
        split.images(int(labels[4]))


def test_label_count_mismatch_names_the_labels_file(tmp_path):
    images, labels = _tiered_source()
    write_npz_tiered(tmp_path, "train", images, labels[:-2])
    with pytest.raises(CorruptDataError, match=r"train_labels.pkl has 16 labels for 18 images"):
        load("tieredimagenet", tmp_path, "train")


def test_labels_file_without_known_keys(tmp_path):
    images, labels = _tiered_source()
    write_npz_tiered(tmp_path, "train", images, labels)
    write_python2_pickle({b"targets": labels}, tmp_path / "train_labels.pkl")
    with pytest.raises(CorruptDataError, match="label_specific.*labels"):
        load("tieredimagenet", tmp_path, "train")
