"""Shared test configuration and helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; excluded from the default run")


def make_episode_batch(seed, tasks=2, n_way=3, k_shot=2, k_query=2, size=16, channels=1,
                       dtype="float32"):
    """A random episode batch in the learners' format (labels shuffled per task)."""
    rng = np.random.default_rng(seed)
    support_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), k_shot))
                               for _ in range(tasks)]).astype("int32")
    query_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), k_query))
                             for _ in range(tasks)]).astype("int32")
    # Class-dependent means make the tasks learnable, not pure noise.
    means = rng.normal(size=(tasks, n_way, size, size, channels))
    support_images = means[np.arange(tasks)[:, None], support_labels] + rng.normal(
        size=(tasks, n_way * k_shot, size, size, channels))
    query_images = means[np.arange(tasks)[:, None], query_labels] + rng.normal(
        size=(tasks, n_way * k_query, size, size, channels))
    return ((support_images.astype(dtype), support_labels, query_images.astype(dtype)),
            query_labels)


@pytest.fixture
def episode_batch():
    return make_episode_batch
