"""Meta-SGD: MAML with learned per-parameter inner learning rates (Li et al., 2017)."""

import keras
import tensorflow as tf

from mgaug_tf import functional
from mgaug_tf.learners.gradient import GradientLearner


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MetaSGD(GradientLearner):
    """MAML whose inner-loop step sizes are meta-learned, one per weight entry.

    The learning rates start at `inner_lr` and are part of
    `trainable_variables`, so the outer optimizer updates them with the
    network.

    Args:
        network: A `FewShotClassifier`.
        n_way: Classes per episode.
        **kwargs: See `GradientLearner`.

    Example:
        >>> learner = MetaSGD(FewShotClassifier(Conv4(), n_way=5), n_way=5)
        >>> learner.inner_learning_rate_variables  # one per network weight
    """

    def _build_learner_weights(self):
        self.inner_learning_rate_variables = [
            # The weight's own dtype: a network whose layers compute in float64
            # under a float32 policy would otherwise get float32 rates.
            self.add_weight(shape=tuple(variable.shape), dtype=variable.dtype,
                            initializer=keras.initializers.Constant(self.inner_lr),
                            name="inner_lr_" + variable.path.replace("/", "_"))
            for variable in self.network.trainable_variables]

    def inner_learning_rates(self) -> list[tf.Tensor]:
        return functional.read_values(self.inner_learning_rate_variables)
