"""miniImageNet: Ravi csv, class folders, pickle cache, category-split pickles."""

import numpy as np
import pytest
from PIL import Image

from mgaug_tf.data import CorruptDataError, DataNotFoundError, load
from tests.data.writers import encode, random_images, write_python2_pickle, write_ravi_mini

WNIDS = ["n01532829", "n01558993", "n01704323"]


def _classes(size=84, seed=0, per_class=4):
    images = random_images(per_class * len(WNIDS), size, seed=seed)
    return {wnid: images[i * per_class:(i + 1) * per_class] for i, wnid in enumerate(WNIDS)}


def _decoded(path, size=84):
    image = Image.open(path).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def test_ravi_csv_layout(tmp_path):
    classes = _classes()
    paths = write_ravi_mini(tmp_path, "train", classes)
    split = load("miniimagenet", tmp_path, "train")
    assert split.class_names == tuple(WNIDS)
    for index, wnid in enumerate(WNIDS):
        images = split.images(index)
        np.testing.assert_array_equal(images, np.stack([_decoded(p) for p in paths[wnid]]))
        # And these are the written images, up to JPEG loss (other images differ by ~60).
        assert np.abs(images.astype(int) - classes[wnid]).mean() < 6
        other = classes[WNIDS[index - 1]]
        assert np.abs(images.astype(int) - other).mean() > 30


def test_ravi_csv_larger_images_are_resized(tmp_path):
    paths = write_ravi_mini(tmp_path, "test", _classes(size=120, seed=1))
    split = load("mini", tmp_path, "test")
    assert split.images(1).shape == (4, 84, 84, 3)
    np.testing.assert_array_equal(split.images(1)[2], _decoded(paths[WNIDS[1]][2]))


def test_ravi_csv_missing_image_is_named(tmp_path):
    paths = write_ravi_mini(tmp_path, "val", _classes(size=16))
    paths[WNIDS[2]][1].unlink()
    with pytest.raises(DataNotFoundError, match=paths[WNIDS[2]][1].name):
        load("miniimagenet", tmp_path, "val")


def test_ravi_csv_bad_header_is_named(tmp_path):
    write_ravi_mini(tmp_path, "train", _classes(size=16))
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(csv_path.read_text().replace("filename,label", "file,wnid"))
    with pytest.raises(CorruptDataError, match="train.csv"):
        load("miniimagenet", tmp_path, "train")


def test_undecodable_jpeg_is_named(tmp_path):
    paths = write_ravi_mini(tmp_path, "train", _classes(size=16))
    paths[WNIDS[0]][3].write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg")
    split = load("miniimagenet", tmp_path, "train")
    with pytest.raises(CorruptDataError, match=paths[WNIDS[0]][3].name):
        split.images(0)


def test_class_folders(tmp_path):
    classes = _classes(seed=2)
    for wnid, images in classes.items():
        (tmp_path / "validation" / wnid).mkdir(parents=True)
        for index, image in enumerate(images):
            (tmp_path / "validation" / wnid / f"{index:03d}.png").write_bytes(encode(image))
    split = load("miniimagenet", tmp_path, "val")
    assert split.class_names == tuple(WNIDS)
    for index, wnid in enumerate(WNIDS):
        np.testing.assert_array_equal(split.images(index), classes[wnid])


def test_cache_pickle_with_validation_spelling(tmp_path):
    images = random_images(12, 84, seed=3)
    rows = {b"n03": [5, 1, 9, 2], b"n01": [0, 3, 4, 6], b"n02": [7, 8, 10, 11]}
    write_python2_pickle({b"image_data": images, b"class_dict": rows},
                         tmp_path / "mini-imagenet-cache-validation.pkl")
    split = load("miniimagenet", tmp_path, "val")
    assert split.class_names == ("n01", "n02", "n03")
    np.testing.assert_array_equal(split.images(2), images[[5, 1, 9, 2]])
    np.testing.assert_array_equal(split.images(0), images[[0, 3, 4, 6]])


def test_category_split_pickle_reindexes_global_labels(tmp_path):
    images = random_images(9, 84, seed=4)
    labels = [81, 80, 99, 80, 81, 99, 99, 80, 81]  # test split: global labels 80-99
    names = {80: b"n0193011", 81: b"n0198197", 99: b"n1329524"}
    write_python2_pickle({b"data": images, b"labels": labels,
                          b"catname2label": {v: k for k, v in names.items()},
                          b"label2catname": names},
                         tmp_path / "miniImageNet_category_split_test.pickle")
    split = load("miniimagenet", tmp_path, "test")
    assert split.class_names == ("n0193011", "n0198197", "n1329524")
    np.testing.assert_array_equal(split.images(0), images[[1, 3, 7]])
    np.testing.assert_array_equal(split.images(2), images[[2, 5, 6]])


def test_category_split_train_phase_train_is_the_train_split(tmp_path):
    images = random_images(4, 84, seed=5)
    write_python2_pickle({b"data": images, b"labels": [0, 1, 0, 1]},
                         tmp_path / "miniImageNet_category_split_train_phase_train.pickle")
    split = load("miniimagenet", tmp_path, "train")
    np.testing.assert_array_equal(split.images(1), images[[1, 3]])


def test_pickle_with_wrong_keys_is_named(tmp_path):
    write_python2_pickle({b"images": np.zeros((2, 84, 84, 3), np.uint8)},
                         tmp_path / "mini-imagenet-cache-train.pkl")
    with pytest.raises(CorruptDataError, match="mini-imagenet-cache-train.pkl.*image_data"):
        load("miniimagenet", tmp_path, "train")
