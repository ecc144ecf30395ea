"""`parallel_tasks`: several tasks of a meta-batch in flight, the same meta-gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners import base
from tests.conftest import make_episode_batch, traced_nodes

WHILE_OPS = ("While", "StatelessWhile")


def _learner(kind, parallel_tasks):
    keras.utils.set_random_seed(0)
    backbone = mg.Conv4(filters=3, dtype="float64")
    augmentation = mg.MGAug("catfish", num_subnets=2, keep_range=(0.6, 0.9))
    if kind == "protonet":
        return mg.ProtoNet(backbone, 3, augmentation=augmentation, parallel_tasks=parallel_tasks)
    if kind == "maml_inductive":  # no MGAug; each task's new batch-norm statistics come back
        return mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_steps=2, bn_mode="inductive",
                       parallel_tasks=parallel_tasks)
    return mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_steps=2,
                   augmentation=augmentation, parallel_tasks=parallel_tasks)


def _loop_parallel_iterations(concrete):
    """The `parallel_iterations` of every graph loop in a traced function and what it calls."""
    return sorted(node.attr["parallel_iterations"].i for node in traced_nodes(concrete)
                  if node.op in WHILE_OPS)


@pytest.mark.parametrize("kind", ["maml", "protonet", "maml_inductive"])
def test_tasks_in_flight_give_the_meta_gradient_and_logs_of_one_at_a_time(kind):
    batch = make_episode_batch(3, tasks=4, dtype="float64")
    results = {}
    for parallel_tasks in (1, 3):
        learner = _learner(kind, parallel_tasks)
        learner.build((16, 16, 1))
        step = tf.function(learner._meta_gradients_and_logs)
        gradients, logs, statistics = step(batch)
        results[parallel_tasks] = ([np.asarray(g) for g in gradients],
                                   {name: float(value) for name, value in logs.items()},
                                   [np.asarray(s) for task in statistics for s in task])
        loops = _loop_parallel_iterations(step.get_concrete_function(batch))
        # The task loop runs `parallel_tasks` iterations at once; MGAug's
        # sub-network loop (inside a task) stays sequential.
        if parallel_tasks == 1:
            assert set(loops) == {1}, loops
        else:
            assert loops.count(parallel_tasks) == 1 and set(loops) <= {1, parallel_tasks}, loops
    # The running sum over tasks is a loop-carried value: the same adds in the
    # same order, so the float64 results agree to the last bit.
    for got, want in zip(results[3][0], results[1][0]):
        np.testing.assert_array_equal(got, want)
    assert results[3][1] == results[1][1]
    assert len(results[3][2]) == len(results[1][2]) == (32 if kind == "maml_inductive" else 0)
    for got, want in zip(results[3][2], results[1][2]):
        np.testing.assert_array_equal(got, want)


def test_graph_loop_with_parallel_iterations_keeps_the_order_of_the_carried_state():
    @tf.function
    def loop():
        return base.sequential_loop(lambda i, x: (i + 1, x * 10.0 + tf.cast(i, tf.float64)),
                                    (0, tf.constant(0.0, tf.float64)), 5, parallel_iterations=4)

    seen = loop()
    assert int(seen[0]) == 5 and float(seen[1]) == 1234.0
    assert _loop_parallel_iterations(loop.get_concrete_function()) == [4]


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
