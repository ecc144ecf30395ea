"""MGAug's invariants, checked on any learner: one harness for every backbone's tests."""

import numpy as np
import tensorflow as tf

from mgaug_tf import functional, inner_loop


def copy_weights(source, target):
    """Assigns `source`'s variables to `target`'s, in order (two learners of one architecture)."""
    for variable_from, variable_to in zip(source.variables, target.variables):
        variable_to.assign(variable_from)


def assert_pruned_entries_stay_frozen(learner, task, inner_steps, inner_lr=0.1):
    """Asserts that every pruned entry gets zero inner-loop update and zero meta-gradient.

    Draws one task's sub-network masks (seeds 1, 2), adapts on the support set
    through the masked network, and compares entry by entry; kept entries must
    get some meta-gradient (so the check cannot pass on an all-zero gradient).

    Returns:
        The masked variables, in the network's order.
    """
    variables = learner.trainable_variables
    _, full = learner.task_gradients(task, variables)
    masks = learner.augmentation.draw_subnetworks(
        learner, tf.constant([1, 2], tf.int64), full).masks[0]
    theta = functional.read_values(learner.network.trainable_variables)

    def support_loss(weights):
        logits, _ = learner._network_call(weights, task.support_images, masks)
        return learner._objective_loss(task.support_labels, logits)

    adapted = inner_loop.adapt(support_loss, theta, inner_lr, inner_steps)
    _, meta_gradients = learner.task_gradients(task, variables, masks=masks)
    masked = []
    for variable, start, end, meta, mask in zip(learner.network.trainable_variables, theta,
                                                adapted, meta_gradients, masks):
        if mask is None:
            continue
        masked.append(variable)
        pruned = np.broadcast_to(np.asarray(mask), start.shape) == 0
        assert pruned.any(), variable.path
        np.testing.assert_array_equal(np.asarray(end)[pruned], np.asarray(start)[pruned])
        assert not np.asarray(meta)[pruned].any(), variable.path
        assert np.asarray(meta)[~pruned].any(), variable.path
    return masked
