"""The sinusoid task family: its distribution, its formula, its keys and its episode format."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf import data
from mgaug_tf.data import sinusoid
from mgaug_tf.errors import ArgumentError

NUM_TASKS = 2000


@pytest.fixture(scope="module")
def train_tasks():
    return sinusoid.SinusoidTasks("train")


@pytest.fixture(scope="module")
def parameters(train_tasks):
    return train_tasks.task_parameters(range(NUM_TASKS), seed=0)


def _episodes(tasks, num_tasks, k_shot=10, k_query=10, seed=0, batch=None, **kwargs):
    """`(support_x, support_y, query_x, query_y)` numpy arrays of tasks 0 .. num_tasks - 1."""
    batches = sinusoid.task_dataset(tasks, k_shot, k_query, batch or num_tasks, training=False,
                                    seed=seed, num_episodes=num_tasks, **kwargs)
    parts = [[] for _ in range(4)]
    for (support_x, support_y, query_x), query_y in batches:
        for part, tensor in zip(parts, (support_x, support_y, query_x, query_y)):
            part.append(tensor.numpy())
    return [np.concatenate(part) for part in parts]


def test_amplitude_and_phase_are_uniform_on_finns_ranges(parameters):
    amplitude, phase = parameters
    # The ranges of Finn et al. (2017), section 5.1, and nothing outside them.
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= math.pi
    # Uniform: 2000 draws reach within 0.05 of both ends, their mean is the
    # midpoint (standard error 0.032 for the amplitude, 0.020 for the phase)
    # and each tenth of the range holds about a tenth of them.
    assert amplitude.min() < 0.15 and amplitude.max() > 4.95
    assert phase.min() < 0.05 and phase.max() > math.pi - 0.05
    assert abs(amplitude.mean() - 2.55) < 0.15
    assert abs(phase.mean() - math.pi / 2) < 0.1
    for values, (low, high) in ((amplitude, sinusoid.AMPLITUDE_RANGE),
                                (phase, sinusoid.PHASE_RANGE)):
        counts, _ = np.histogram(values, bins=10, range=(low, high))
        assert counts.min() > 140 and counts.max() < 260, counts


def test_points_are_uniform_in_minus_5_to_5_and_follow_the_sine(train_tasks):
    support_x, support_y, query_x, query_y = _episodes(train_tasks, 300)
    amplitude, phase = train_tasks.task_parameters(range(300), seed=0)
    for x, y in ((support_x, support_y), (query_x, query_y)):
        assert x.shape == (300, 10, 1) and y.shape == (300, 10, 1)
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert x.min() >= -5.0 and x.max() <= 5.0
        assert x.min() < -4.95 and x.max() > 4.95 and abs(x.mean()) < 0.15
        # y = A sin(x - phase), Finn et al.'s form, computed here in float64.
        expected = (amplitude[:, None, None].astype(np.float64)
                    * np.sin(x.astype(np.float64) - phase[:, None, None]))
        np.testing.assert_allclose(y, expected, rtol=0, atol=2e-5)


def test_tasks_are_fixed_by_seed_split_and_task_id(train_tasks):
    first = _episodes(train_tasks, 12, seed=3)
    again = _episodes(train_tasks, 12, seed=3, batch=5)  # other batches, same tasks
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # Task 7 alone, by its id, is the 8th task of the sequence.
    alone = _episodes(train_tasks, 1, seed=3, first_task=7)
    for a, b in zip(first, alone):
        np.testing.assert_array_equal(a[7:8], b)
    other_seed = _episodes(train_tasks, 12, seed=4)
    other_split = _episodes(sinusoid.SinusoidTasks("test"), 12, seed=3)
    for other in (other_seed, other_split):
        assert not np.isin(first[0], other[0]).any()  # no shared points
    amplitudes = [tasks.task_parameters(range(50), seed=0)[0]
                  for tasks in map(sinusoid.SinusoidTasks, ("train", "val", "test"))]
    assert not np.isin(amplitudes[0], amplitudes[1]).any()
    assert not np.isin(amplitudes[1], amplitudes[2]).any()


def test_support_and_query_are_separate_draws(train_tasks):
    support_x, _, query_x, _ = _episodes(train_tasks, 50)
    for task in range(50):
        assert not np.isin(support_x[task], query_x[task]).any()
    # A task's function and query points do not depend on the support size.
    _, _, query_5, query_y_5 = _episodes(train_tasks, 50, k_shot=5)
    np.testing.assert_array_equal(query_5, query_x)
    np.testing.assert_array_equal(query_y_5, _episodes(train_tasks, 50)[3])


def test_training_stream_and_input_pipelines(train_tasks):
    stream = sinusoid.task_dataset(train_tasks, 5, 3, 4, seed=1)
    (support_x, support_y, query_x), query_y = next(iter(stream))
    assert [tuple(t.shape) for t in (support_x, support_y, query_x, query_y)] == [
        (4, 5, 1), (4, 5, 1), (4, 3, 1), (4, 3, 1)]
    reference = _episodes(train_tasks, 4, k_shot=5, k_query=3, seed=1)
    np.testing.assert_array_equal(support_x.numpy(), reference[0])
    # Two input pipelines take every other task (as episode_dataset's do).
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=2)
    second = sinusoid.task_dataset(train_tasks, 5, 3, 4, seed=1, input_context=context)
    (support_x, _, _), _ = next(iter(second))
    np.testing.assert_array_equal(support_x.numpy(), reference[0][[1, 3]])


def test_evaluation_keeps_the_last_partial_batch(train_tasks):
    sizes = [int(batch[1].shape[0]) for batch in sinusoid.task_dataset(
        train_tasks, 5, 5, 4, training=False, num_episodes=10)]
    assert sizes == [4, 4, 2]


@pytest.mark.parametrize("kwargs, argument", [
    (dict(k_shot=0), "k_shot"), (dict(k_query=2.0), "k_query"),
    (dict(meta_batch_size=True), "meta_batch_size"), (dict(seed="0"), "seed"),
    (dict(training=False), "num_episodes")])
def test_bad_arguments_are_named(train_tasks, kwargs, argument):
    arguments = dict(k_shot=5, k_query=5, meta_batch_size=2)
    arguments.update(kwargs)
    with pytest.raises(ArgumentError, match=f"`{argument}`") as error:
        sinusoid.task_dataset(train_tasks, **arguments)
    assert error.value.argument == argument


def test_load_gives_the_task_family_and_refuses_files():
    tasks = data.load("sinusoid", split="validation")
    assert isinstance(tasks, sinusoid.SinusoidTasks) and tasks.split == "val"
    assert (tasks.example_shape, tasks.is_image, tasks.objective) == ((1,), False, "regression")
    with pytest.raises(ValueError, match="sinusoid is generated and reads no files"):
        data.load("sinusoid", "/tmp", "train")
    with pytest.raises(ArgumentError, match="`split` must be one of"):
        sinusoid.SinusoidTasks("holdout")
    from mgaug_tf.data.load import dataset_objective  # pylint: disable=import-outside-toplevel
    assert dataset_objective("sinusoid") == "regression"
    assert dataset_objective("glyphs") == "classification"
