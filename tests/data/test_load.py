"""`load`: names, splits, options, and the errors for missing or unknown files."""

import pytest

from mgaug_tf.data import DataNotFoundError, available_datasets, load


def test_available_datasets():
    assert sorted(available_datasets()) == ["arrays", "cifar_fs", "cub", "fc100", "folder",
                                            "glyphs", "miniimagenet", "omniglot", "sinusoid",
                                            "tieredimagenet"]


def test_missing_data_dir_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"{tmp_path / 'nowhere'} does not exist"):
        load("miniimagenet", tmp_path / "nowhere", "train")


def test_no_data_dir_lists_the_expected_files():
    with pytest.raises(DataNotFoundError, match="(?s)needs data_dir.*train_images.npz"):
        load("tieredimagenet", None, "train")


def test_unrecognised_files_list_every_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "train_images_png.pkl").write_bytes(b"")  # its labels file is missing
    with pytest.raises(DataNotFoundError) as error:
        load("tieredimagenet", tmp_path, "val")
    message = str(error.value)
    assert str(tmp_path) in message and "notes.txt" in message
    assert "val_images.npz + val_labels.pkl" in message
    assert "val_images_png.pkl + val_labels.pkl" in message
    assert "'validation'" in message


def test_unrecognised_mini_files_list_every_format(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load("miniimagenet", tmp_path, "train")
    message = str(error.value)
    for expected in ("train.csv + images/", "mini-imagenet-cache-train.pkl",
                     "miniImageNet_category_split_train_phase_train.pickle", "train/"):
        assert expected in message


@pytest.mark.parametrize("name", ["omniglot", "cub", "cifar_fs", "fc100"])
def test_every_dataset_names_its_files(tmp_path, name):
    with pytest.raises(DataNotFoundError, match="Expected one of"):
        load(name, tmp_path, "test")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'.*miniimagenet"):
        load("imagenet", "/tmp")


def test_dataset_aliases_are_accepted():
    assert load("builtin", split="val", num_classes=(3, 4, 5)).num_classes == 4
    assert load("Glyphs", split="test", num_classes=(3, 4, 5)).num_classes == 5


def test_unknown_split():
    with pytest.raises(ValueError, match="split='dev'"):
        load("glyphs", split="dev")


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['rotation'\] for omniglot"):
        load("omniglot", tmp_path, "train", rotation=True)


def test_builtin_takes_no_data_dir(tmp_path):
    with pytest.raises(ValueError, match="reads no files"):
        load("glyphs", tmp_path)


def test_bad_image_size_option(tmp_path):
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        load("glyphs", image_size=0)
