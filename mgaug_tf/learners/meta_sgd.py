"""Meta-SGD: MAML with learned per-parameter inner learning rates (Li et al., 2017)."""

import keras

from mgaug_tf import functional
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
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

    The network's batch norms run on the plain differentiable ops: layers
    left at `fused="auto"` are switched to `fused=False`, because TensorFlow
    2.21 builds a cyclic graph for Meta-SGD's second-order step through the
    fused batch-norm gradient kernel (`FUSED_CYCLE`).

    Raises:
        ValueError: A batch-norm layer of `network` has `fused=True`.

    Example:
        >>> learner = MetaSGD(FewShotClassifier(Conv4(), n_way=5), n_way=5)
        >>> learner.inner_learning_rate_variables  # one per network weight
    """

    def __init__(self, network, n_way, **kwargs):
        for layer in network._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, MetaBatchNormalization):
                if layer.fused is True:
                    raise ValueError(
                        f"MetaSGD: batch-norm layer {layer.name!r} has fused=True, but "
                        f"{FUSED_CYCLE}. Build it with fused=False or 'auto' (Meta-SGD then "
                        "uses the plain ops).")
                layer.fused = False
        super().__init__(network, n_way, **kwargs)

    def _build_learner_weights(self):
        self.inner_learning_rate_variables = [
            self.add_weight(shape=tuple(variable.shape),
                            initializer=keras.initializers.Constant(self.inner_lr),
                            name="inner_lr_" + variable.path.replace("/", "_"))
            for variable in self.network.trainable_variables]

    def inner_learning_rates(self):
        return functional.read_values(self.inner_learning_rate_variables)
