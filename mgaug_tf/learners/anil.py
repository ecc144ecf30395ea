"""ANIL: Almost No Inner Loop (Raghu et al., 2020)."""

import keras
import tensorflow as tf

from mgaug_tf import functional
from mgaug_tf.learners.base import cross_entropy
from mgaug_tf.learners.gradient import GradientLearner


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ANIL(GradientLearner):
    """MAML whose inner loop adapts the head only.

    The backbone's features are computed once per task (support and query in
    separate passes) and the shared inner loop runs on the head's weights;
    meta-gradients still reach the backbone through the features.

    Args:
        network: A `FewShotClassifier` (its `head` is adapted).
        n_way: Classes per episode.
        **kwargs: See `GradientLearner`.

    Example:
        >>> learner = ANIL(FewShotClassifier(Conv4(), n_way=5), n_way=5)
    """

    def _query_logits(self, weights, task, masks=None, training=True):
        backbone, head = self.network.backbone, self.network.head
        split = len(backbone.trainable_variables)
        body_weights, head_weights = weights[:split], weights[split:]
        body_masks = head_masks = None
        if masks is not None:
            body_masks, head_masks = masks[:split], masks[split:]
        support_features, _ = self._network_call(body_weights, task.support_images,
                                                 body_masks, training, layer=backbone)
        query_features, new_statistics = self._network_call(
            body_weights, task.query_images, body_masks, training, layer=backbone)
        # Sub-networks at another resolution: the flatten-head rule of this learner.
        flatten_head = self._call_options(self.network).get("flatten_head")
        support_features, query_features = (
            self.network.head_features(features, (tf.shape(images)[1], tf.shape(images)[2]),
                                       flatten_head)
            if features.shape[-1] != head.kernel.shape[0] else features
            for features, images in ((support_features, task.support_images),
                                     (query_features, task.query_images)))

        def head_logits(head_values, features, masks):
            logits, _ = functional.call_with_weights(head, head_values, [], features,
                                                     masks=masks)
            return logits

        def support_loss(fast, features, labels, masks):
            return cross_entropy(labels, head_logits(fast, features, masks))

        # The support features depend on the backbone: they go to the inner
        # loop as an argument, so a recomputed step differentiates through them.
        adapted = self._adapt(head_weights, support_loss, training,
                              inputs=(support_features, task.support_labels, head_masks))
        return head_logits(adapted, query_features, head_masks), new_statistics
