"""The base of gradient-based learners: adapt with THE inner loop, then classify."""

import tensorflow as tf

from mgaug_tf import functional
from mgaug_tf import inner_loop
from mgaug_tf.learners.base import MetaLearner, accuracy, cross_entropy, scale_loss


def tile_weights(weights, groups):
    """`groups` copies of each weight, stacked on a new leading axis."""
    return [tf.tile(weight[None], [groups] + [1] * weight.shape.rank) for weight in weights]


class GroupedOutcome(tuple):
    """`(losses [G], logits [G, M, N], group_gradients, gradients)` of G copies run side by side.

    `group_gradients` are aligned with `network.trainable_variables`, each
    `[G, *shape]` (copy g's own meta-gradient); `gradients` are aligned with
    the learner's `trainable_variables` and hold the gradient of the combined
    objective (the sum over copies unless told otherwise).
    """

    def __new__(cls, losses, logits, group_gradients, gradients):
        return super().__new__(cls, (losses, logits, group_gradients, gradients))

    losses = property(lambda self: self[0])
    logits = property(lambda self: self[1])
    group_gradients = property(lambda self: self[2])
    gradients = property(lambda self: self[3])


class GradientLearner(MetaLearner):
    """A learner whose adaptation is gradient descent on the support loss.

    Args:
        network: A `FewShotClassifier` (backbone + head).
        n_way: Classes per episode (the head's width).
        inner_lr: Inner-loop SGD learning rate.
        inner_steps: Inner steps in training.
        eval_inner_steps: Inner steps at evaluation and inference (defaults to
            `inner_steps`).
        first_order: Stop gradients through the inner-loop gradients (FOMAML).
        recompute: Recompute each inner step in the outer backward pass instead
            of storing it (`inner_loop.adapt`): trades time for memory, e.g. for
            second-order MAML with ResNet-12. Exact: the support loss gets
            every tensor it reads (images, masks, ANIL's features) as an
            argument of the recomputed step.
        vectorize: Run the meta-batch's tasks (and each task's MGAug
            sub-networks) as one batched computation: their weights stacked
            and every convolution a grouped convolution (`grouped_call` of the
            network), the same inner loop on the stacked weights. Needs a
            network with `grouped_call` (Conv4), transductive batch norm, and
            MGAug without `resolutions` or `parity`. Meta-gradients equal the
            per-task path's (the reference, `vectorize=False`) to rounding;
            memory grows with the tasks held at once. Training only:
            evaluation and inference stay per task.
        **kwargs: See `MetaLearner` (`bn_mode`, `task_reduction`,
            `augmentation`, ...).
    """

    uses_inner_loop = True

    def __init__(self, network, n_way, inner_lr=0.01, inner_steps=5, eval_inner_steps=None,
                 first_order=False, recompute=False, vectorize=False, **kwargs):
        if inner_steps < 1 or (eval_inner_steps is not None and eval_inner_steps < 0):
            raise ValueError(f"inner_steps must be >= 1 and eval_inner_steps >= 0; got "
                             f"{inner_steps} and {eval_inner_steps}.")
        if not inner_lr > 0:
            raise ValueError(f"inner_lr must be positive, got {inner_lr}.")
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.first_order = bool(first_order)
        self.recompute = bool(recompute)
        self.vectorize = bool(vectorize)
        super().__init__(network, n_way, **kwargs)
        if self.vectorize:
            self._check_vectorizable()

    supports_vectorize = True

    def _check_vectorizable(self):
        problems = []
        if not self.supports_vectorize:
            problems.append(f"{type(self).__name__} adapts only part of the network")
        if not getattr(self.network, "supports_grouped_call", False):
            backbone = getattr(self.network, "backbone", self.network)
            problems.append(f"the network ({type(backbone).__name__}) has no grouped_call")
        if self.bn_mode != "transductive":
            problems.append("bn_mode must be 'transductive' (batch statistics per task)")
        augmentation = self.augmentation
        if augmentation is not None and (augmentation.resolutions or augmentation.parity):
            problems.append("MGAug resolutions (sizes differ per sub-network) and parity "
                            "(sequential score accumulation) need the per-task path")
        if problems:
            raise ValueError("vectorize=True is not available: " + "; ".join(problems) + ".")

    def _inner_steps(self, training):
        return self.inner_steps if training else self.eval_inner_steps

    def inner_learning_rates(self):
        """The inner-loop learning rates: a scalar, or per-weight tensors (Meta-SGD)."""
        return self.inner_lr

    def _adapt(self, weights, loss_fn, training, inputs=()):
        """`inner_loop.adapt` with this learner's rates and steps.

        `loss_fn(fast_weights, *inputs)` must take every tensor it reads
        (images, labels, masks, features) from `inputs`, never from its
        closure, so that a recomputed step differentiates through them.
        """
        # Without an outer tape (evaluation) second-order terms would be built
        # for nothing, so stop them there too.
        return inner_loop.adapt(loss_fn, weights, self.inner_learning_rates(),
                                self._inner_steps(training),
                                first_order=self.first_order or not training,
                                recompute=self.recompute and training, inputs=inputs)

    def _query_logits(self, weights, task, masks=None, training=True):
        def support_loss(fast_weights, images, labels, masks):
            logits, _ = self._network_call(fast_weights, images, masks, training)
            return cross_entropy(labels, logits)

        adapted = self._adapt(weights, support_loss, training,
                              inputs=(task.support_images, task.support_labels, masks))
        return self._network_call(adapted, task.query_images, masks, training)

    # ------------------------------------------------------- vectorized path
    def _grouped_query_logits(self, weights, task, masks=None):
        """`_query_logits` of G copies at once (training behaviour).

        `weights` and `masks` carry a leading group axis; `task` holds
        `[G, ...]` tensors.
        """
        def network_call(fast_weights, images, masks):
            return self.network.grouped_call(functional.apply_masks(fast_weights, masks), images)

        def support_loss(fast_weights, images, labels, masks):
            # Copies are independent, so the gradient of the sum is each copy's own.
            logits = network_call(fast_weights, images, masks)
            return tf.reduce_sum(cross_entropy(labels, logits, axis=-1))

        adapted = self._adapt(weights, support_loss, training=True,
                              inputs=(task.support_images, task.support_labels, masks))
        return network_call(adapted, task.query_images, masks)

    def grouped_gradients(self, task, masks=None, combine=None, loss_scale=None):
        """Query losses and meta-gradients of G copies computed side by side.

        Args:
            task: An `episodes.Task` of stacked tensors `[G, ...]`: G tasks, or
                G sub-networks' views of tasks.
            masks: Optional masks aligned with `network.trainable_variables`,
                each `[G, *shape]` or `None`.
            combine: Maps the losses `[G]` to the objective differentiated for
                `GroupedOutcome.gradients` (default: their sum).
            loss_scale: Optional loss scale multiplied into the objective
                inside the tape (both gradient lists come out scaled).

        Returns:
            A `GroupedOutcome`.
        """
        network_variables = self.network.trainable_variables
        network_ids = {id(variable) for variable in network_variables}
        own_variables = [variable for variable in self.trainable_variables
                         if id(variable) not in network_ids]
        groups = tf.TensorShape(task.support_images.shape)[0]
        with tf.GradientTape() as tape:
            stacked = tile_weights(functional.read_values(network_variables), groups)
            logits = self._grouped_query_logits(stacked, task, masks)
            losses = cross_entropy(task.query_labels, logits, axis=-1)
            objective = tf.reduce_sum(losses) if combine is None else combine(losses)
            objective = scale_loss(objective, loss_scale)
        group_gradients = tape.gradient(objective, stacked + own_variables,
                                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
        by_id = {id(variable): tf.reduce_sum(gradient, axis=0)
                 for variable, gradient in zip(network_variables, group_gradients)}
        by_id.update({id(variable): gradient for variable, gradient
                      in zip(own_variables, group_gradients[len(stacked):])})
        gradients = [by_id[id(variable)] for variable in self.trainable_variables]
        return GroupedOutcome(losses, logits, group_gradients[:len(stacked)], gradients)

    def _meta_gradients_and_logs(self, data, loss_scale=None):
        if not self.vectorize:
            return super()._meta_gradients_and_logs(data, loss_scale)
        # The batch is already task-major: its tensors are the stacked tasks.
        stacked_task = self._checked_batch(data)
        num_tasks = self.tasks_per_replica
        outcome = self.grouped_gradients(stacked_task, loss_scale=loss_scale)
        totals = outcome.gradients
        logs = {"loss": tf.reduce_mean(tf.cast(outcome.losses, tf.float32)),
                "accuracy": accuracy(stacked_task.query_labels, outcome.logits)}
        before = self.network.grouped_call(
            tile_weights(functional.read_values(self.network.trainable_variables), num_tasks),
            stacked_task.query_images)
        logs["accuracy_before"] = accuracy(stacked_task.query_labels, before)
        if self.augmentation is not None:
            totals, augment_logs = self.augmentation.grouped_task_gradients(
                self, stacked_task, outcome, loss_scale=loss_scale)
            logs.update(augment_logs)
        else:  # per-task norm of the network's meta-gradient, as MGAug's full_grad_norm
            logs["full_grad_norm"] = tf.reduce_mean(tf.sqrt(tf.add_n([
                tf.reduce_sum(tf.square(tf.reshape(gradient, [num_tasks, -1])), axis=1)
                for gradient in outcome.group_gradients])))
        if self.task_reduction == "mean":
            scale = self._mean_scale(num_tasks)
            totals = [total * tf.cast(scale, total.dtype) for total in totals]
        self.meta_step.assign_add(1)
        return totals, logs, []

    def _logits_before_adaptation(self, weights, task):
        logits, _ = self._network_call(weights, task.query_images, None, True)
        return logits

    def get_config(self):
        config = super().get_config()
        config.update(inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                      eval_inner_steps=self.eval_inner_steps, first_order=self.first_order,
                      recompute=self.recompute, vectorize=self.vectorize)
        return config
