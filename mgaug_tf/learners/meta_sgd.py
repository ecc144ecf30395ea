"""Meta-SGD: MAML with learned per-parameter inner learning rates (Li et al., 2017)."""

import inspect
from typing import Any, Optional

import keras
import tensorflow as tf

from mgaug_tf import functional
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners.gradient import GradientLearner

FUSED_CYCLE = (
    "TensorFlow 2.21 fails Meta-SGD's second-order step through its fused batch-norm "
    "gradient kernel with 'N nodes in a cycle' (the graph itself, with or without "
    "Grappler; MAML, FOMAML, ANIL and ProtoNet are not affected)")


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MetaSGD(GradientLearner):
    """MAML whose inner-loop step sizes are meta-learned, one per weight entry.

    The learning rates start at `inner_lr` and are part of
    `trainable_variables`, so the outer optimizer updates them with the
    network.

    The network's batch norms run on the plain differentiable ops: the
    learner's calls pass `fused_batch_norm=False` (`Conv4.call`) to a network
    whose batch norms would otherwise fuse, because TensorFlow 2.21 builds a
    cyclic graph for Meta-SGD's second-order step through the fused
    batch-norm gradient kernel (`FUSED_CYCLE`). The network's layers are
    not changed.

    Args:
        network: A `FewShotClassifier` (or any network whose `call` takes
            `fused_batch_norm` if it holds batch norms that fuse).
        n_way: Classes per episode.
        **kwargs: See `GradientLearner`.

    Raises:
        mgaug_tf.errors.ArgumentError: (argument `network`) A batch-norm
            layer of `network` has `fused=True`, or its batch norms would
            fuse and its `call` has no `fused_batch_norm` argument.

    Example:
        >>> learner = MetaSGD(FewShotClassifier(Conv4(), n_way=5), n_way=5)
        >>> learner.inner_learning_rate_variables  # one per network weight
    """

    def __init__(self, network: keras.Model, n_way: Optional[int] = None,
                 **kwargs: Any) -> None:
        norms = [layer for layer in network._flatten_layers(include_self=True, recursive=True)
                 if isinstance(layer, MetaBatchNormalization)]
        forced = [norm.name for norm in norms if norm.fused is True]
        if forced:
            raise ArgumentError(
                "network", network,
                f"must not force the fused batch-norm kernel (layers {forced} have "
                f"fused=True), because {FUSED_CYCLE}; build them with fused=False or 'auto' "
                "(Meta-SGD then runs the plain ops)", owner="MetaSGD")
        if any(norm.fused is not False for norm in norms):
            if "fused_batch_norm" not in inspect.signature(network.call).parameters:
                raise ArgumentError(
                    "network", network,
                    "must take `fused_batch_norm` in its call (as Conv4, ResNet12 and "
                    "FewShotClassifier do) or build its batch norms with fused=False, "
                    f"because {FUSED_CYCLE}", owner="MetaSGD")
            # Instance setting read by `_call_options`: the shared network stays as given.
            self.fused_batch_norm = False
        super().__init__(network, n_way, **kwargs)

    def _build_learner_weights(self):
        self.inner_learning_rate_variables = [
            self.add_weight(shape=tuple(variable.shape),
                            initializer=keras.initializers.Constant(self.inner_lr),
                            name="inner_lr_" + variable.path.replace("/", "_"))
            for variable in self.network.trainable_variables]

    def inner_learning_rates(self) -> list[tf.Tensor]:
        return functional.read_values(self.inner_learning_rate_variables)
