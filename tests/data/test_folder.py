"""The `folder` dataset: pixels and grouping against the files, split files, each bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from mgaug_tf.data import CorruptDataError, DataNotFoundError, episode_dataset, load


def _save(path, array, mode=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kwargs)


def _identified(label, index, size=12):
    """An RGB image whose every pixel tells its class and index: R = 40 label, G = 10 index."""
    return np.broadcast_to(np.array([40 * label, 10 * index, 200], np.uint8),
                           (size, size, 3)).copy()


def _write_classes(folder, counts, size=12):
    """Class folders `c0`, `c1`, ... of identified PNGs; returns {class: [images]}."""
    written = {}
    for label, count in enumerate(counts):
        written[f"c{label}"] = []
        for index in range(count):
            image = _identified(label, index, size)
            _save(folder / f"c{label}" / f"{index:02d}.png", image)
            written[f"c{label}"].append(image)
    return written


def _luma(rgb):
    """Pillow's RGB -> L rule (ITU-R 601-2 in fixed point), computed independently."""
    rgb = rgb.astype(np.int64)
    return ((19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + 32768)
            >> 16).astype(np.uint8)


def test_split_folders_give_the_files_pixels_in_any_mode(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    palette = Image.fromarray(rgb).quantize(colors=16)
    train = tmp_path / "train"
    # Class "b" first on disk: classes come in sorted order, files in name order.
    _save(train / "b" / "1_rgb.png", rgb)
    _save(train / "b" / "2_grey.png", grey, "L")
    _save(train / "b" / "3_rgba.png", rgba, "RGBA")
    palette.save(train / "b" / "4_palette.png")
    _save(train / "b" / "5_large.bmp", np.full((40, 33, 3), (9, 99, 199), np.uint8))
    _save(train / "b" / "6_photo.jpg", rgb, quality=90)
    _save(train / "a" / "x.gif", grey, "L")
    # Hidden files and OS litter are ignored, not reported.
    (train / "b" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (train / "b" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (train / "b" / "._1_rgb.png").write_bytes(b"AppleDouble")
    (train / "b" / ".ipynb_checkpoints").mkdir()
    (train / ".hidden_class").mkdir()

    split = load("folder", tmp_path, "train", image_size=16)
    assert split.class_names == ("a", "b")
    assert split.is_image and split.image_shape == split.example_shape == (16, 16, 3)
    assert split.strict_class_sizes
    assert "converted to RGB and resized to 16x16" in split.conversion
    images = split.images(1)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], rgb)
    np.testing.assert_array_equal(images[1], np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(images[2], rgba[..., :3])
    np.testing.assert_array_equal(images[3], np.asarray(palette.convert("RGB")))
    np.testing.assert_array_equal(images[4], np.full((16, 16, 3), (9, 99, 199), np.uint8))
    with Image.open(train / "b" / "6_photo.jpg") as photo:
        np.testing.assert_array_equal(images[5], np.asarray(photo))
    np.testing.assert_array_equal(split.images(0)[0], np.repeat(grey[..., None], 3, axis=2))

    grey_split = load("folder", tmp_path, "train", image_size=16, channels=1)
    assert grey_split.image_shape == (16, 16, 1) and "grey (L)" in grey_split.conversion
    grey_images = grey_split.images(1)
    np.testing.assert_array_equal(grey_images[0, ..., 0], _luma(rgb))
    np.testing.assert_array_equal(grey_images[1, ..., 0], grey)
    # Default size 84: a uniform image stays uniform whatever its size.
    assert load("folder", tmp_path, "train").images(1)[4].shape == (84, 84, 3)
    np.testing.assert_array_equal(load("folder", tmp_path, "train").images(1)[4],
                                  np.full((84, 84, 3), (9, 99, 199), np.uint8))


def test_episodes_hold_whole_classes_of_the_files(tmp_path):
    written = _write_classes(tmp_path / "val", [5, 4, 6, 4])
    split = load("folder", tmp_path, "validation", image_size=12)
    assert split.split == "val" and split.class_names == ("c0", "c1", "c2", "c3")
    batches = episode_dataset(split, n_way=3, k_shot=2, k_query=2, meta_batch_size=2,
                              training=False, num_episodes=4, seed=3)
    seen = set()
    for (support, support_labels, query), query_labels in batches:
        images = np.concatenate([support, query], axis=1) * 255
        labels = np.concatenate([support_labels, query_labels], axis=1)
        for task_images, task_labels in zip(images, labels):
            pixels = np.round(task_images[:, 0, 0]).astype(int)       # [M, 3]
            for label in range(3):
                rows = pixels[task_labels == label]
                classes = set(rows[:, 0] // 40)
                assert len(classes) == 1  # one episode label, one class folder
                (label_class,) = classes
                indices = rows[:, 1] // 10
                assert len(set(indices)) == 4  # no image twice
                for row, index in zip(rows, indices):
                    np.testing.assert_array_equal(
                        row, written[f"c{label_class}"][index][0, 0])
                seen.add(int(label_class))
    assert seen == {0, 1, 2, 3}


def test_json_split_file_is_honoured(tmp_path):
    _write_classes(tmp_path / "images", [3, 3, 3, 3, 3])
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"train": ["c3", "c0", "c4"], "validation": ["c1"],
                                      "test": ["c2"]}))
    train = load("folder", tmp_path / "images", "train", split_file=str(split_file),
                 image_size=12)
    assert train.class_names == ("c0", "c3", "c4")
    np.testing.assert_array_equal(train.images(1)[2], _identified(3, 2))
    assert load("folder", tmp_path / "images", "val", split_file=split_file).class_names == (
        "c1",)
    test = load("folder", tmp_path / "images", "test", split_file=split_file, image_size=12)
    np.testing.assert_array_equal(test.images(0), np.stack([_identified(2, i) for i in range(3)]))
    assert "split file" in test.description


def test_csv_split_file_is_honoured(tmp_path):
    _write_classes(tmp_path, [2, 2, 2, 2])
    with_header = tmp_path / "with_header.csv"
    with_header.write_text("class,split\nc0,train\nc2,train\n\nc1,val\nc3,test\n")
    assert load("folder", tmp_path, "train", split_file=with_header).class_names == ("c0", "c2")
    assert load("folder", tmp_path, "val", split_file=with_header).class_names == ("c1",)
    without_header = tmp_path / "plain.csv"
    without_header.write_text("c3,validation\nc1 , train\n")
    assert load("folder", tmp_path, "val", split_file=without_header).class_names == ("c3",)
    assert load("folder", tmp_path, "train", split_file=without_header).class_names == ("c1",)


def test_closerlook_lists_name_the_classes(tmp_path):
    _write_classes(tmp_path / "images", [2, 2, 2, 2])
    lists = tmp_path / "filelists"
    lists.mkdir()
    names = ["c0", "c1", "c2", "c3"]
    for file_name, labels in (("base.json", [0, 0, 3]), ("val.json", [1]),
                              ("novel.json", [2, 2])):
        (lists / file_name).write_text(json.dumps({
            "label_names": names, "image_labels": labels,
            "image_names": [f"/elsewhere/{names[label]}/x.jpg" for label in labels]}))
    assert load("folder", tmp_path / "images", "train", split_file=lists).class_names == (
        "c0", "c3")
    assert load("folder", tmp_path / "images", "test", split_file=lists).class_names == ("c2",)
    with pytest.raises(CorruptDataError, match="is a CloserLook list of one split; pass the "
                                               "folder holding base.json"):
        load("folder", tmp_path / "images", "train", split_file=lists / "base.json")


def test_non_images_and_empty_classes_are_named_in_one_error(tmp_path):
    _write_classes(tmp_path / "train", [2, 2])
    (tmp_path / "train" / "c0" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "c1" / "nested").mkdir()
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(CorruptDataError) as error:
        load("folder", tmp_path, "train")
    assert str(error.value) == (
        f"folder {tmp_path}: 2 entries in class folders are not images (.jpg, .jpeg, .png, "
        ".gif, .bmp, .webp): train/c0/notes.txt, train/c1/nested/; 1 class folder has no "
        "images: 'empty'. Remove or move these (hidden files such as .DS_Store are ignored); "
        "nothing was read.")


def test_a_non_image_with_an_image_name_is_found_by_the_check(tmp_path):
    _write_classes(tmp_path / "train", [2, 2])
    (tmp_path / "train" / "c1" / "fake.png").write_text("plain text")
    split = load("folder", tmp_path, "train")
    (problem,) = split.check_images()
    assert problem.startswith(f"{tmp_path / 'train' / 'c1' / 'fake.png'}: not a JPEG, PNG, GIF, BMP or "
                               "WebP file")


def test_short_classes_are_named_with_their_counts(tmp_path):
    _write_classes(tmp_path / "train", [6, 3, 6, 2])
    split = load("folder", tmp_path, "train")
    with pytest.raises(ValueError) as error:
        episode_dataset(split, n_way=2, k_shot=1, k_query=3, meta_batch_size=1)
    assert str(error.value) == (
        "2 classes of folder train have fewer than k_shot + k_query = 1 + 3 = 4 examples: "
        "'c1' (3), 'c3' (2). Add examples to them, remove them from the split, or lower k_shot "
        "or k_query.")
    episode_dataset(split, n_way=2, k_shot=1, k_query=1, meta_batch_size=1)


def test_split_file_naming_missing_classes(tmp_path):
    _write_classes(tmp_path, [2, 2])
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"train": ["c0", "dog", "cat"], "test": ["c1"]}))
    with pytest.raises(DataNotFoundError) as error:
        load("folder", tmp_path, "train", split_file=split_file)
    assert str(error.value) == (
        f"split_file {split_file} names 2 classes of the 'train' split that are not folders in "
        f"{tmp_path}: 'dog', 'cat' (it holds: c0/, c1/, splits.json).")


@pytest.mark.parametrize("content, message", [
    ({"train": ["c0"], "test": ["c0"]}, "puts class 'c0' in both 'train' and 'test'"),
    ({"train": ["c0"], "valid": ["c1"]}, "has the key 'valid'; expected train, val"),
    ({"test": ["c1"]}, r"has no 'train' list \(it has \['test'\]\)"),
    ({"train": "c0"}, "'train' must be a list of class names"),
    (["c0"], "holds a JSON list; expected an object"),
])
def test_bad_json_split_files(tmp_path, content, message):
    _write_classes(tmp_path, [2, 2])
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps(content))
    with pytest.raises(CorruptDataError, match=message):
        load("folder", tmp_path, "train", split_file=split_file)


def test_bad_csv_split_file_names_the_line(tmp_path):
    _write_classes(tmp_path, [2, 2])
    split_file = tmp_path / "splits.csv"
    split_file.write_text("c0,train\nc1,holdout\n")
    with pytest.raises(CorruptDataError, match=r"splits.csv line 2: split 'holdout'; expected "
                                               "train, val"):
        load("folder", tmp_path, "train", split_file=split_file)


def test_layout_and_option_mistakes(tmp_path):
    _write_classes(tmp_path / "classes", [2, 2])
    with pytest.raises(DataNotFoundError, match=r"its folders \(c0/, c1/\) need split_file"):
        load("folder", tmp_path / "classes", "train")
    _write_classes(tmp_path / "splits" / "train", [2, 2])
    with pytest.raises(ValueError, match="split_file='x.json' is given, but .* holds split "
                                         "folders"):
        load("folder", tmp_path / "splits", "train", split_file="x.json")
    with pytest.raises(DataNotFoundError, match="has split folders train/ but no test/"):
        load("folder", tmp_path / "splits", "test")
    with pytest.raises(ValueError, match=r"`channels` must be 1 \(grey\) or 3 \(RGB\)\. "
                                         r"Received: channels=4"):
        load("folder", tmp_path / "splits", "train", channels=4)
    with pytest.raises(DataNotFoundError, match="split_file .*nowhere.json does not exist"):
        load("folder", tmp_path / "classes", "train", split_file=tmp_path / "nowhere.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="No folder files for split 'train'"):
        load("folder", tmp_path / "empty", "train")
