"""Omniglot: zips or folders, inversion, rotations, the Vinyals split rule."""

import zipfile

import numpy as np
import pytest

from mgaug_tf.data import CorruptDataError, load
from mgaug_tf.data.omniglot import vinyals_split
from tests.data.writers import write_omniglot


def _drawings(seed, characters=3, drawings=4):
    rng = np.random.default_rng(seed)
    return [[np.where(rng.random((105, 105)) < 0.1, 0, 255).astype(np.uint8)  # black strokes
             for _ in range(drawings)] for _ in range(characters)]


def _write(root, as_zip):
    background = {"Latin": _drawings(0), "Greek": _drawings(1, characters=2)}
    evaluation = {"Tengwar": _drawings(2, characters=2)}
    name = "images_{}.zip" if as_zip else "images_{}"
    written = write_omniglot(root / name.format("background"), background, as_zip, "background")
    written.update(write_omniglot(root / name.format("evaluation"), evaluation, as_zip,
                                  "evaluation"))
    return written


@pytest.mark.parametrize("as_zip", [True, False], ids=["zips", "folders"])
def test_background_evaluation_pixels_are_inverted(tmp_path, as_zip):
    written = _write(tmp_path, as_zip)
    split = load("omniglot", tmp_path, "train", split_scheme="background_evaluation",
                 image_size=105)
    assert split.class_names == ("Greek/character01", "Greek/character02", "Latin/character01",
                                 "Latin/character02", "Latin/character03")
    assert split.category_names == ("Greek", "Latin")
    assert split.category_labels.tolist() == [0, 0, 1, 1, 1]
    for index, name in enumerate(split.class_names):
        expected = 255 - np.stack(written[tuple(name.split("/"))])[..., None]
        np.testing.assert_array_equal(split.images(index), expected)
    test = load("omniglot", tmp_path, "test", split_scheme="background_evaluation")
    assert test.num_classes == 2 and test.images(0).shape == (4, 28, 28, 1)


def test_rotations_are_extra_classes(tmp_path):
    written = _write(tmp_path, as_zip=True)
    split = load("omniglot", tmp_path, "test", split_scheme="background_evaluation",
                 rotations=True, image_size=105)
    assert split.num_classes == 8
    assert split.class_names[:4] == tuple(f"Tengwar/character01/rot{d:03d}"
                                          for d in (0, 90, 180, 270))
    upright = 255 - np.stack(written[("Tengwar", "character01")])
    for turns in range(4):
        np.testing.assert_array_equal(split.images(turns)[..., 0],
                                      np.rot90(upright, turns, axes=(1, 2)))


def test_resized_images_keep_strokes_bright(tmp_path):
    _write(tmp_path, as_zip=True)
    images = load("omniglot", tmp_path, "train", split_scheme="background_evaluation").images(0)
    assert images.shape == (4, 28, 28, 1)
    # 10% of pixels were strokes: inverted, the mean is about 0.1 * 255.
    assert 10 < images.mean() < 50


def test_vinyals_needs_the_full_set(tmp_path):
    _write(tmp_path, as_zip=True)
    with pytest.raises(CorruptDataError, match="full Omniglot.*background_evaluation"):
        load("omniglot", tmp_path, "train")


def test_background_evaluation_has_no_val(tmp_path):
    _write(tmp_path, as_zip=True)
    with pytest.raises(ValueError, match="no val split"):
        load("omniglot", tmp_path, "val", split_scheme="background_evaluation")


def test_corrupt_zip_is_named(tmp_path):
    _write(tmp_path, as_zip=True)
    path = tmp_path / "images_background.zip"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptDataError, match="images_background.zip"):
        load("omniglot", tmp_path, "train", split_scheme="background_evaluation")


def test_corrupt_zip_member_is_named(tmp_path):
    _write(tmp_path, as_zip=True)
    path = tmp_path / "images_evaluation.zip"
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[1]
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename)
    data[start + 40:start + 60] = b"\x00" * 20  # inside the member: the CRC check fails
    path.write_bytes(bytes(data))
    split = load("omniglot", tmp_path, "test", split_scheme="background_evaluation")
    with pytest.raises(CorruptDataError, match=info.filename):
        split.images(0)


def test_vinyals_rule_matches_the_published_lists(shared_data):
    lists = shared_data / "splits" / "omniglot_vinyals_ren"
    published = {split: {tuple(line.split("/")) for line in
                         (lists / f"{split}.txt").read_text().split()}
                 for split in ("train", "val", "test")}
    with zipfile.ZipFile(shared_data / "omniglot" / "images_background.zip") as archive:
        background = {tuple(name.split("/")[1:3]) for name in archive.namelist()
                      if name.endswith(".png")}
    with zipfile.ZipFile(shared_data / "omniglot" / "images_evaluation.zip") as archive:
        evaluation = {tuple(name.split("/")[1:3]) for name in archive.namelist()
                      if name.endswith(".png")}
    for split, expected in published.items():
        ours = {character[1:] for character in vinyals_split(background, evaluation, split)}
        assert ours == expected, split


def test_sampled_source_classes_keep_every_rotation_and_their_images(tmp_path):
    _write(tmp_path, as_zip=True)
    split = load("omniglot", tmp_path, "train", split_scheme="background_evaluation",
                 rotations=True)
    assert split.num_classes == 20 and split.num_source_classes == 5
    subset = split.sample_source_classes(2, seed=3)
    assert subset.num_classes == 8 and subset.num_source_classes == 2
    characters = sorted({name.rsplit("/", 1)[0] for name in subset.class_names})
    assert len(characters) == 2
    # Every kept character comes with its 4 rotations, in the original order.
    assert list(subset.class_names) == [name for name in split.class_names
                                        if name.rsplit("/", 1)[0] in characters]
    for index, name in enumerate(subset.class_names):
        np.testing.assert_array_equal(subset.images(index),
                                      split.images(split.class_names.index(name)))
    assert subset.sample_source_classes(2, seed=0).num_classes == 8
    # The seed names the subset; all 10 pairs of 5 characters are reachable.
    assert split.sample_source_classes(2, seed=3).class_names == subset.class_names
    drawn = {split.sample_source_classes(2, seed=seed).class_names for seed in range(40)}
    assert len(drawn) > 3
    for count in (0, 6):
        with pytest.raises(ValueError, match=f"Cannot keep {count} source classes of omniglot "
                                             "train: it has 5"):
            split.sample_source_classes(count, seed=0)
