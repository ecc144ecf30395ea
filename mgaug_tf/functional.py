"""Calling a Keras layer on explicit ("fast") weights, optionally masked.

Every forward pass of the learners goes through `call_with_weights`: the
full network's and every pruned sub-network's. A sub-network is the same call
with masks, never a copy of the model.
"""

import tensorflow as tf


def apply_masks(weights, masks=None):
    """Multiplies each weight by its mask (`None` entries stay unmasked).

    Masked entries then get exactly zero gradient, since d(w * m)/dw = m.

    Args:
        weights: List of weight tensors.
        masks: `None`, or a list aligned with `weights` holding a mask tensor of
            the weight's shape (or broadcastable to it) or `None`.

    Returns:
        The list of (masked) weights.

    Example:
        >>> apply_masks([w1, w2], [None, m2])  # [w1, w2 * m2]
    """
    if masks is None:
        return list(weights)
    if len(masks) != len(weights):
        raise ValueError(f"Got {len(masks)} masks for {len(weights)} weights.")
    return [weight if mask is None else weight * tf.cast(mask, weight.dtype)
            for weight, mask in zip(weights, masks)]


def call_with_weights(layer, weights, non_trainable_weights, inputs, training=False,
                      masks=None):
    """Runs `layer` with `weights` in place of its trainable variables.

    Gradients flow into `weights` (tensors), which is what nested
    `tf.GradientTape`s need for second-order meta-gradients. The layer's
    variables are neither read nor written.

    Args:
        layer: A built Keras layer or model.
        weights: Tensors aligned with `layer.trainable_variables`.
        non_trainable_weights: Tensors aligned with
            `layer.non_trainable_variables` (batch-norm moving statistics).
        inputs: The layer's input.
        training: Forwarded to the layer (batch-norm uses batch statistics
            when True).
        masks: Optional masks aligned with `weights` (see `apply_masks`).

    Returns:
        `(outputs, new_non_trainable_weights)`.

    Example:
        >>> logits, _ = call_with_weights(network, fast_weights, stats, images)
    """
    return layer.stateless_call(apply_masks(weights, masks), list(non_trainable_weights),
                                inputs, training=training)


def read_values(variables):
    """Current values of `variables` as tensors (recorded by an active tape)."""
    return [tf.convert_to_tensor(variable) for variable in variables]
