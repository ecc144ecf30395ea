"""`base.sequential_loop`: the graph loop of tasks and MGAug sub-networks."""

import tensorflow as tf

from mgaug_tf.learners import base


def test_graph_loop_runs_count_iterations_and_turns_off_add_ops_rewrite():
    # Grappler's AddOpsRewrite made ProtoNet + catfish at 84 px fail with
    # AlreadyExistsError inside these loops (TF 2.21); the loop turns it off.
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})
    index, total = base.sequential_loop(lambda i, x: (i + 1, x + tf.cast(i, tf.float32)),
                                        (tf.constant(0), tf.constant(0.0)), 4)
    assert int(index) == 4 and float(total) == 0.0 + 1.0 + 2.0 + 3.0
    assert tf.config.optimizer.get_experimental_options()["arithmetic_optimization"] is False
    unrolled = base.sequential_loop(lambda i, x: (i + 1, x * 2.0),
                                    (tf.constant(0), tf.constant(1.0)), 3, unroll=True)
    assert float(unrolled[1]) == 8.0
