"""MAML (second order) and FOMAML (first order)."""

from typing import Any, Optional

import keras

from mgaug_tf.learners.gradient import GradientLearner


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MAML(GradientLearner):
    """Model-Agnostic Meta-Learning (Finn et al., 2017).

    Every trainable weight of the network (batch-norm gamma/beta included) is
    adapted in the inner loop; meta-gradients differentiate through it.

    Args:
        network: A `FewShotClassifier`.
        n_way: Classes per episode.
        first_order: `True` gives FOMAML.
        **kwargs: See `GradientLearner`.

    Example:
        >>> learner = MAML(FewShotClassifier(Conv4(), n_way=5), n_way=5)
        >>> learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> learner.fit(episode_batches, steps_per_epoch=100)
    """


@keras.saving.register_keras_serializable(package="mgaug_tf")
class FOMAML(MAML):
    """First-order MAML: `MAML(..., first_order=True)`."""

    def __init__(self, network: keras.Model, n_way: Optional[int] = None,
                 **kwargs: Any) -> None:
        kwargs["first_order"] = True
        super().__init__(network, n_way, **kwargs)
