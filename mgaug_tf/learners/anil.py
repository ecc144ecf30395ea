"""ANIL: Almost No Inner Loop (Raghu et al., 2020)."""

from typing import Any, Optional

import keras
import tensorflow as tf
# Keras 3's class of models built by calling layers on `keras.Input`s (not exported).
from keras.src.models.functional import Functional

from mgaug_tf import functional
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners.gradient import GradientLearner


def adapted_layer(network: keras.Model, owner: str = "ANIL") -> keras.layers.Layer:
    """The layer whose weights ANIL adapts in a network without a backbone/head split.

    The last layer with trainable weights of a `keras.Sequential` or
    functional model, in the model's layer order (call order: for a chain,
    the layer nearest the output).

    Raises:
        mgaug_tf.errors.ArgumentError: (argument `network`) A subclassed
            model (its layers' call order is unknown) or a functional model
            with several outputs, or no layer with weights.
    """
    layers = getattr(network, "layers", None)
    if not isinstance(network, (keras.Sequential, Functional)) or layers is None:
        raise ArgumentError(
            "network", getattr(network, "name", network),
            "must be a FewShotClassifier (its head is adapted), a keras.Sequential or a "
            f"functional keras.Model for ANIL, which adapts the last layer; a subclassed "
            f"{type(network).__name__} does not say which layer that is (its layers' call "
            "order is unknown)", owner=owner)
    if len(tf.nest.flatten(getattr(network, "outputs", None) or [None])) > 1:
        raise ArgumentError("network", network.name,
                            "must have one output for ANIL, which adapts the layer that "
                            "computes it", owner=owner)
    with_weights = [layer for layer in layers
                    if layer.trainable and not isinstance(layer, keras.layers.InputLayer)
                    and _may_have_weights(layer)]
    if not with_weights:
        raise ArgumentError("network", network.name,
                            "must have a layer with trainable weights for ANIL to adapt",
                            owner=owner)
    return with_weights[-1]


def _may_have_weights(layer):
    """Whether `layer` has (or, unbuilt, will have) trainable weights."""
    if layer.built:
        return bool(layer.trainable_weights)
    # Unbuilt layers of these kinds never create weights.
    return not isinstance(layer, (keras.layers.Activation, keras.layers.Flatten,
                                  keras.layers.Reshape, keras.layers.Dropout,
                                  keras.layers.Lambda))


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ANIL(GradientLearner):
    """MAML whose inner loop adapts the head only.

    With a `FewShotClassifier`, the backbone's features are computed once
    per task (support and query in separate passes) and the shared inner
    loop runs on the head's weights; meta-gradients still reach the backbone
    through the features. With any other network (a `keras.Sequential` or
    functional model) the inner loop adapts the trainable weights of its
    last layer with weights (`adapted_layer`) and runs the whole network in
    each inner step, the other weights fixed (they reach the inner loop
    through its `inputs`, so a recomputed step stays exact).

    Args:
        network: A `FewShotClassifier` (its `head` is adapted), or a
            `keras.Sequential` / functional model (its last layer with
            weights is).
        n_way: Classes per episode (None for regression).
        **kwargs: See `GradientLearner`.

    Raises:
        mgaug_tf.errors.ArgumentError: (argument `network`) A network
            whose adapted layer cannot be determined (`adapted_layer`); or
            an argument of `GradientLearner`'s.

    Example:
        >>> learner = ANIL(FewShotClassifier(Conv4(), n_way=5), n_way=5)
    """

    inner_loop_through_network = False

    def __init__(self, network: keras.Model, n_way: Optional[int] = None,
                 **kwargs: Any) -> None:
        split = hasattr(network, "backbone") and hasattr(network, "head")
        self._adapted_layer = None if split else adapted_layer(network)
        super().__init__(network, n_way, **kwargs)

    def _adapted_positions(self):
        """Indices into `network.trainable_variables` of the adapted layer's weights."""
        adapted = {id(variable) for variable in self._adapted_layer.trainable_variables}
        positions = [index for index, variable in enumerate(self.network.trainable_variables)
                     if id(variable) in adapted]
        if not positions:
            raise ArgumentError("network", self.network.name,
                                f"must have trainable weights in its last layer "
                                f"{self._adapted_layer.name} for ANIL to adapt", owner="ANIL")
        return positions

    def _query_logits(self, weights, task, masks=None, training=True):
        if self._adapted_layer is not None:
            return self._last_layer_query_logits(weights, task, masks, training)
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
            return self._objective_loss(labels, head_logits(fast, features, masks))

        # The support features depend on the backbone: they go to the inner
        # loop as an argument, so a recomputed step differentiates through them.
        adapted = self._adapt(head_weights, support_loss, training,
                              inputs=(support_features, task.support_labels, head_masks))
        return head_logits(adapted, query_features, head_masks), new_statistics

    def _last_layer_query_logits(self, weights, task, masks, training):
        """The inner loop on the last layer's weights of a network without a head split."""
        positions = self._adapted_positions()
        position_set = set(positions)
        fixed = [weight for index, weight in enumerate(weights) if index not in position_set]

        def merged(adapted, fixed):
            adapted, fixed = iter(adapted), iter(fixed)
            return [next(adapted) if index in position_set else next(fixed)
                    for index in range(len(weights))]

        def support_loss(fast, images, labels, fixed, masks):
            logits, _ = self._network_call(merged(fast, fixed), images, masks, training)
            return self._objective_loss(labels, logits)

        # The fixed weights depend on theta: arguments of the inner loop, so a
        # recomputed step differentiates through them.
        adapted = self._adapt([weights[index] for index in positions], support_loss, training,
                              inputs=(task.support_images, task.support_labels, fixed, masks))
        return self._network_call(merged(adapted, fixed), task.query_images, masks, training)
