"""Prototypical Networks (Snell et al., 2017)."""

from typing import Any, Optional

import keras
import tensorflow as tf

from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners.base import MetaLearner


def prototype_logits(support_embeddings, support_labels, query_embeddings, n_way):
    """Negative squared Euclidean distances from queries to class prototypes.

    Args:
        support_embeddings: `[N*K, D]`.
        support_labels: `[N*K]` ints in `[0, n_way)`.
        query_embeddings: `[M, D]`.
        n_way: Number of classes.

    Returns:
        Logits `[M, n_way]`.
    """
    if support_embeddings.dtype in (tf.bfloat16, tf.float16):
        # Distances of 16-bit embeddings cancel badly: compute them in float32.
        support_embeddings = tf.cast(support_embeddings, tf.float32)
        query_embeddings = tf.cast(query_embeddings, tf.float32)
    prototypes = tf.math.unsorted_segment_mean(
        support_embeddings, tf.cast(support_labels, tf.int32), n_way)
    differences = query_embeddings[:, None, :] - prototypes[None, :, :]
    return -tf.reduce_sum(tf.square(differences), axis=-1)


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ProtoNet(MetaLearner):
    """Classifies queries by their distance to per-class mean support embeddings.

    No inner loop: support and query are embedded in separate forward passes
    (batch statistics of each in transductive mode).

    Args:
        network: The encoder (e.g. `Conv4()`), mapping examples to vectors.
        n_way: Classes per episode.
        **kwargs: See `MetaLearner`.

    Raises:
        mgaug_tf.errors.ArgumentError: (argument `objective`)
            `objective="regression"`: prototypes are class means, so
            ProtoNet classifies only. Or an argument of `MetaLearner`'s.

    Example:
        >>> learner = ProtoNet(Conv4(), n_way=5)
        >>> logits = learner.adapt_and_predict(s_images, s_labels, q_images)
    """

    def __init__(self, network: keras.Model, n_way: Optional[int] = None,
                 **kwargs: Any) -> None:
        objective = kwargs.get("objective", "classification")
        if objective == "regression":
            raise ArgumentError(
                "objective", objective,
                "must be 'classification': ProtoNet classifies queries by their distance to "
                "class prototypes (mean support embeddings per class), which has no meaning for "
                "real-valued targets; use MAML, FOMAML, ANIL or MetaSGD for regression",
                owner="ProtoNet")
        super().__init__(network, n_way, **kwargs)

    def _query_logits(self, weights, task, masks=None, training=True):
        support_embeddings, _ = self._network_call(weights, task.support_images, masks, training)
        query_embeddings, new_statistics = self._network_call(
            weights, task.query_images, masks, training)
        logits = prototype_logits(support_embeddings, task.support_labels, query_embeddings,
                                  self.n_way)
        return logits, new_statistics
