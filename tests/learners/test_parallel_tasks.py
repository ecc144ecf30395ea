"""`parallel_tasks`: several tasks of a meta-batch in flight, the same meta-gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners import base
from tests.conftest import make_episode_batch


def _learner(kind, parallel_tasks):
    keras.utils.set_random_seed(0)
    backbone = mg.Conv4(filters=3, dtype="float64")
    augmentation = mg.MGAug("catfish", num_subnets=2, keep_range=(0.6, 0.9))
    if kind == "protonet":
        return mg.ProtoNet(backbone, 3, augmentation=augmentation, parallel_tasks=parallel_tasks)
    return mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_steps=2,
                   augmentation=augmentation, parallel_tasks=parallel_tasks)


@pytest.mark.parametrize("kind", ["maml", "protonet"])
def test_tasks_in_flight_give_the_meta_gradient_and_logs_of_one_at_a_time(kind):
    batch = make_episode_batch(3, tasks=4, dtype="float64")
    results = {}
    for parallel_tasks in (1, 3):
        learner = _learner(kind, parallel_tasks)
        learner.build((16, 16, 1))
        gradients, logs, _ = tf.function(learner._meta_gradients_and_logs)(batch)
        results[parallel_tasks] = ([np.asarray(g) for g in gradients],
                                   {name: float(value) for name, value in logs.items()})
    # The running sum over tasks is a loop-carried value: the same adds in the
    # same order, so the float64 results agree to the last bit.
    for got, want in zip(results[3][0], results[1][0]):
        np.testing.assert_array_equal(got, want)
    assert results[3][1] == results[1][1]


def test_graph_loop_with_parallel_iterations_keeps_the_order_of_the_carried_state():
    seen = base.sequential_loop(lambda i, x: (i + 1, x * 10.0 + tf.cast(i, tf.float64)),
                                (0, tf.constant(0.0, tf.float64)), 5, parallel_iterations=4)
    assert int(seen[0]) == 5 and float(seen[1]) == 1234.0


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
def test_parallel_tasks_must_be_a_positive_integer(value):
    with pytest.raises(ArgumentError, match=r"parallel_tasks.*must be an integer >= 1"):
        _learner("maml", value)


def test_parallel_tasks_survives_a_keras_file(tmp_path):
    learner = _learner("maml", 2)
    learner.build((16, 16, 1))
    path = str(tmp_path / "learner.keras")
    learner.save(path)
    assert learner.get_config()["parallel_tasks"] == 2
    assert mg.load_model(path).parallel_tasks == 2
