"""Fixtures for the data tests: the shared real data, and tiny identifiable splits."""

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mgaug_tf.data import FewShotSplit


def shared_data_candidate():
    """`$MGAUG_SHARED_DATA`, else `../shared/data` beside the repository."""
    return Path(os.environ.get("MGAUG_SHARED_DATA")
                or Path(__file__).resolve().parents[2].parent / "shared" / "data")


def shared_data_dir():
    """The real benchmark data folder, or None when it is absent."""
    path = shared_data_candidate()
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data():
    path = shared_data_dir()
    if path is None:
        pytest.skip(f"real benchmark data not found at {shared_data_candidate()} (../shared/data "
                    "beside the repository, or set MGAUG_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def mini_subset_dir(shared_data, tmp_path_factory):
    """The 2,000-image miniImageNet subset (Ravi layout), extracted once per session."""
    archive = shared_data / "miniimagenet" / "miniimagenet_subset20.tar"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent")
    target = tmp_path_factory.mktemp("miniimagenet")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def identifiable_split(num_classes=6, images_per_class=8, size=8, sizes=None):
    """A split whose every pixel tells its image: R = class, G = index in class, B = 7.

    `sizes` optionally gives each class its own image count.
    """
    sizes = sizes or [images_per_class] * num_classes
    images, labels = [], []
    for label, count in enumerate(sizes):
        for index in range(count):
            images.append(np.broadcast_to(np.array([label, index, 7], np.uint8),
                                          (size, size, 3)))
            labels.append(label)
    return FewShotSplit.from_arrays(np.stack(images), np.array(labels))


def decode_ids(images):
    """float images `[..., H, W, 3]` of `identifiable_split` -> int `[..., 2]` (class, index)."""
    pixels = np.round(np.asarray(images)[..., 0, 0, :] * 255).astype(int)
    return pixels[..., :2]
