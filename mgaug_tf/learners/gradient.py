"""The base of gradient-based learners: adapt with THE inner loop, then predict."""

from typing import Any, Optional

import keras
import tensorflow as tf

from mgaug_tf import inner_loop
from mgaug_tf.checks import check_inner_loop
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners.base import MetaLearner


def check_network_width(network, width, n_way, owner):
    """Refuses a `network` whose `width` logits (None: unknown, not checked) are not `n_way`.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `network`.
    """
    if width is not None and width != n_way:
        raise ArgumentError(
            "network", network,
            f"must end in an n_way-wide head (n_way={n_way}) but gives {width} outputs per "
            f"example; use FewShotClassifier(backbone, {n_way})", owner=owner)


class GradientLearner(MetaLearner):
    """A learner whose adaptation is gradient descent on the support loss.

    Args:
        network: A `FewShotClassifier` (backbone + head), or any Keras 3
            network whose outputs are `n_way` logits (classification) or
            `[S, D]` predictions (regression); docs/models.md lists the
            layers it may hold.
        n_way: Classes per episode: the network's output width (None for
            `objective="regression"`).
        inner_lr: Inner-loop SGD learning rate, a positive number.
        inner_steps: Inner steps in training, an integer >= 1.
        eval_inner_steps: Inner steps at evaluation and inference, an integer
            >= 0 (defaults to `inner_steps`).
        first_order: Stop gradients through the inner-loop gradients (FOMAML).
        recompute: Recompute each inner step in the outer backward pass instead
            of storing it (`inner_loop.adapt`): trades time for memory, e.g. for
            second-order MAML with ResNet-12. Exact: the support loss gets
            every tensor it reads (images, masks, ANIL's features) as an
            argument of the recomputed step.
        log_before_adaptation: Also log, each training step, the query
            accuracy (regression: loss) of the network before the inner loop
            (`accuracy_before`, `loss_before`): one more forward pass of each
            task's query set, which the reference code does not run.
        **kwargs: See `MetaLearner` (`bn_mode`, `task_reduction`,
            `augmentation`, `objective`, ...).

    Raises:
        mgaug_tf.errors.ArgumentError: `inner_lr`, `inner_steps` or
            `eval_inner_steps` is out of its domain (or an argument of
            `MetaLearner`'s); (argument `network`) the network's output
            width is not `n_way`: checked here when the network has an
            `n_way` attribute (`FewShotClassifier`), else by `build` from
            the network's output spec on symbolic examples.
    """

    uses_inner_loop = True
    inner_lr: float
    inner_steps: int
    eval_inner_steps: int
    first_order: bool
    recompute: bool
    log_before_adaptation: bool

    def __init__(self, network: keras.Model, n_way: Optional[int] = None, inner_lr: float = 0.01,
                 inner_steps: int = 5, eval_inner_steps: Optional[int] = None,
                 first_order: bool = False, recompute: bool = False,
                 log_before_adaptation: bool = False, **kwargs: Any) -> None:
        owner = type(self).__name__
        check_inner_loop(inner_lr, inner_steps, eval_inner_steps, owner)
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.first_order = bool(first_order)
        self.recompute = bool(recompute)
        self.log_before_adaptation = bool(log_before_adaptation)
        super().__init__(network, n_way, **kwargs)
        if self.objective == "classification":
            check_network_width(network, getattr(network, "n_way", None), self.n_way, owner)

    def _check_outputs(self, outputs):
        """Refuses a classifier whose output spec (from `build`) is not `n_way` logits wide."""
        if self.objective == "classification" and getattr(self.network, "n_way", None) is None:
            # The spec comes from a symbolic call, which any model supports (a
            # subclassed one has no compute_output_shape).
            shape = tuple(outputs.shape) if isinstance(outputs, keras.KerasTensor) else ()
            width = shape[-1] if len(shape) >= 2 else None
            check_network_width(self.network, width, self.n_way, type(self).__name__)

    def _inner_steps(self, training):
        return self.inner_steps if training else self.eval_inner_steps

    def inner_learning_rates(self) -> float | list[tf.Tensor]:
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
            return self._objective_loss(labels, logits)

        adapted = self._adapt(weights, support_loss, training,
                              inputs=(task.support_images, task.support_labels, masks))
        return self._network_call(adapted, task.query_images, masks, training)

    def _logits_before_adaptation(self, weights, task):
        logits, _ = self._network_call(weights, task.query_images, None, True)
        return logits

    def _has_accuracy_before(self):
        return self.log_before_adaptation

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                      eval_inner_steps=self.eval_inner_steps, first_order=self.first_order,
                      recompute=self.recompute, log_before_adaptation=self.log_before_adaptation)
        return config
