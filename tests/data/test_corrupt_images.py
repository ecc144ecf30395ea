"""Unreadable images: the pre-flight checks of a split and errors from inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf import data
from mgaug_tf.data import errors, sources
from tests.data.writers import encode, random_images, write_ravi_mini


@pytest.fixture
def ravi_with_bad_files(tmp_path):
    classes = {f"n{c:08d}": random_images(5, 20, seed=c) for c in range(3)}
    paths = write_ravi_mini(tmp_path, "train", classes)
    files = [path for name in sorted(paths) for path in paths[name]]
    files[0].write_bytes(b"")
    files[6].write_bytes(b"GIF89a" + b"\0" * 40)  # a GIF signature, but no GIF
    jpeg = files[9].read_bytes()
    files[9].write_bytes(jpeg[:len(jpeg) // 2])
    files[13].write_bytes(b"\x00\x01\x02\x03" * 10)
    return tmp_path, files


def test_quick_check_finds_empty_and_non_image_files_only(ravi_with_bad_files):
    root, files = ravi_with_bad_files
    split = data.load("miniimagenet", root, "train")
    seen = []
    problems = split.check_images(progress=seen.append)
    assert problems == [f"{files[0]}: empty (0 bytes)",
                        f"{files[13]}: not a JPEG, PNG, GIF, BMP or WebP file (40 bytes "
                        "starting 00 01 02 03)"]
    assert seen[-1] == 15


def test_decoding_check_finds_every_undecodable_file_in_parallel(ravi_with_bad_files):
    root, files = ravi_with_bad_files
    split = data.load("miniimagenet", root, "train")
    seen = []
    problems = split.check_images(decode=True, workers=3, progress=seen.append)
    assert [problem.split(" ")[3].rstrip(":") for problem in problems] == [
        str(files[index]) for index in (0, 6, 9, 13)]
    assert problems[0] == (f"Cannot decode image {files[0]}: it is empty (0 bytes).")
    assert "BytesIO" not in " ".join(problems)  # no in-memory buffer names
    assert seen == sorted(seen) and seen[-1] == 15


def test_array_splits_have_nothing_to_check():
    split = data.FewShotSplit.from_arrays(np.zeros([4, 8, 8, 1], np.uint8), [0, 0, 1, 1])
    assert split.check_images() == [] and split.check_images(decode=True) == []


def test_quick_problem_accepts_every_signature_pillow_reads():
    image = random_images(1, 8)[0]
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        blob = encode(image, fmt)
        assert sources.quick_image_problem(len(blob), blob[:8]) is None, fmt


def test_pipeline_error_becomes_the_packages_one_line_error(ravi_with_bad_files):
    root, files = ravi_with_bad_files
    split = data.load("miniimagenet", root, "train")
    dataset = data.episode_dataset(split, 3, 1, 4, meta_batch_size=1, training=False,
                                   num_episodes=40)
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        for _ in dataset:
            pass
    error = errors.error_from_pipeline(raised.value)
    assert isinstance(error, data.CorruptDataError)
    assert str(error).startswith("Cannot decode image ") and "\n" not in str(error)
    assert any(str(path) in str(error) for path in files)
    assert errors.error_from_pipeline(ValueError("unrelated")) is None
