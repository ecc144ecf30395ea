"""`base.sequential_loop`: the graph loop of tasks and MGAug sub-networks."""

import tensorflow as tf

from mgaug_tf.learners import base


def test_graph_loop_runs_count_iterations_and_leaves_tensorflow_options_alone():
    before = tf.config.optimizer.get_experimental_options()
    index, total = base.sequential_loop(lambda i, x: (i + 1, x + tf.cast(i, tf.float32)),
                                        (tf.constant(0), tf.constant(0.0)), 4)
    assert int(index) == 4 and float(total) == 0.0 + 1.0 + 2.0 + 3.0
    assert tf.config.optimizer.get_experimental_options() == before


def test_loop_starting_at_an_index_runs_count_iterations_from_it():
    seen = base.sequential_loop(lambda i, x: (i + 1, x * 10.0 + tf.cast(i, tf.float32)),
                                (2, tf.constant(0.0)), 3)
    assert int(seen[0]) == 5 and float(seen[1]) == 234.0


def test_unrolled_loop_passes_python_indices():
    indices = []

    def body(index, value):
        indices.append(index)
        return index + 1, value * 2.0

    unrolled = base.sequential_loop(body, (1, tf.constant(1.0)), 3, unroll=True)
    assert indices == [1, 2, 3] and float(unrolled[1]) == 8.0
