"""Calling a Keras layer on explicit ("fast") weights, optionally masked.

Every forward pass of the learners goes through `call_with_weights`: the
full network's and every pruned sub-network's. A sub-network is the same call
with masks, never a copy of the model.
"""

import keras
import tensorflow as tf


class SlicedMasks(list):
    """Masks to be executed on sliced weights rather than multiplied in.

    A list of masks (as `apply_masks` takes them) that asks
    `call_with_weights` to compute the same function with the layer's
    `sliced_call`: per-output-channel kernel masks (MGAug's `random_width`)
    run on the kept channels only (`backbones.sliced`). Slicing keeps the
    type, so a learner can split it between backbone and head as it splits
    plain masks; `tf.nest` keeps it too (the inner loop's `inputs`).

    Example:
        >>> logits, _ = call_with_weights(network, fast, stats, images,
        ...                               masks=SlicedMasks(channel_masks))
    """

    def __getitem__(self, index):
        item = super().__getitem__(index)
        return SlicedMasks(item) if isinstance(index, slice) else item


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
                      masks=None, **call_options):
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
            `SlicedMasks` run the layer's `sliced_call` instead (same
            function, convolutions on the kept channels); a layer without
            one gets them multiplied in if it has no convolution (a dense
            head), else raises.
        **call_options: Further keyword arguments of the layer's `call` (and
            `sliced_call`), e.g. `fused_batch_norm=False` or
            `flatten_head="reference"` for a `FewShotClassifier`: settings
            of one caller that must not be written into a shared layer.

    Returns:
        `(outputs, new_non_trainable_weights)`.

    Raises:
        ValueError: `SlicedMasks` for a layer with convolutions but no
            `sliced_call`.

    Example:
        >>> logits, _ = call_with_weights(network, fast_weights, stats, images)
    """
    if isinstance(masks, SlicedMasks):
        if hasattr(layer, "sliced_call") and getattr(layer, "supports_sliced_call", True):
            return layer.sliced_call(list(weights), list(non_trainable_weights), inputs,
                                     masks, training=training, **call_options)
        if any(isinstance(sub, keras.layers.Conv2D)
               for sub in layer._flatten_layers(include_self=True, recursive=True)):
            raise ValueError(f"{type(layer).__name__} has convolutions but no sliced_call: "
                             "its sub-networks cannot run on sliced weights (MGAug "
                             "width_execution='masked' runs them masked).")
        masks = list(masks)
    return layer.stateless_call(apply_masks(weights, masks), list(non_trainable_weights),
                                inputs, training=training, **call_options)


def read_values(variables):
    """Current values of `variables` as tensors (recorded by an active tape)."""
    return [tf.convert_to_tensor(variable) for variable in variables]
