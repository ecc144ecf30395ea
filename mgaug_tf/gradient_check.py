"""Finite-difference checks of a learner's meta-gradients.

Used by the test suite, and by users who bring their own backbone: a
second-order meta-gradient can be silently wrong (Keras's stock batch norm is),
and a float64 central difference is the only convincing proof.

Example:
    >>> learner = MAML(FewShotClassifier(MyBackbone(dtype="float64"), 5), 5)
    >>> _, gradients = learner.compute_meta_gradients(float64_batch)
    >>> FiniteDifferences(learner, float64_batch).directional(gradients, seed=0)
    (analytic, numeric, relative_error)
"""

import numpy as np
import tensorflow as tf


class FiniteDifferences:
    """Central finite differences of a learner's summed query loss (the meta-loss).

    The meta-loss is compiled once per learner and batch; the variables are
    perturbed in place and restored after each check.

    Args:
        learner: A built `MetaLearner`.
        batch: An episode batch.
        epsilon: Step of the central difference.
        meta_loss: Optional function of no arguments returning the scalar to
            differentiate (it reads the learner's variables), e.g. an MGAug
            objective with fixed masks; default: the batch's summed query loss.
    """

    def __init__(self, learner, batch, epsilon=1e-6, meta_loss=None):
        self.learner = learner
        self.epsilon = epsilon
        if meta_loss is None:
            tasks = learner._split_tasks(batch)

            def meta_loss():
                return tf.add_n([learner.task_outcome(task, training=True).query_loss
                                 for task in tasks])

        self.meta_loss = tf.function(meta_loss)

    def _derivative(self, perturb):
        variables = self.learner.trainable_variables
        originals = [variable.numpy() for variable in variables]

        def loss_at(scale):
            for variable, value, delta in zip(variables, originals, perturb):
                if delta is not None:
                    variable.assign(value + scale * delta)
            return float(self.meta_loss())

        numeric = (loss_at(self.epsilon) - loss_at(-self.epsilon)) / (2 * self.epsilon)
        for variable, value in zip(variables, originals):
            variable.assign(value)
        return numeric

    def directional(self, gradients, seed):
        """Returns (analytic, numeric, relative error) of <g, v> for a random v."""
        rng = np.random.default_rng(seed)
        directions = [rng.normal(size=v.shape) for v in self.learner.trainable_variables]
        numeric = self._derivative(directions)
        analytic = float(sum(np.sum(np.asarray(g) * d) for g, d in zip(gradients, directions)))
        return analytic, numeric, abs(analytic - numeric) / max(abs(numeric), 1e-12)

    def coordinate(self, gradients, variable_index, flat_index):
        """Returns (analytic, numeric, relative error) for one weight entry."""
        variables = self.learner.trainable_variables
        perturb = [None] * len(variables)
        delta = np.zeros(variables[variable_index].shape).reshape(-1)
        delta[flat_index] = 1.0
        perturb[variable_index] = delta.reshape(variables[variable_index].shape)
        numeric = self._derivative(perturb)
        analytic = float(np.asarray(gradients[variable_index]).reshape(-1)[flat_index])
        return analytic, numeric, abs(analytic - numeric) / max(abs(numeric), 1e-12)
