"""Calling a Keras layer on explicit ("fast") weights, optionally masked.

Every forward pass of the learners goes through `call_with_weights`: the
full network's and every pruned sub-network's. A sub-network is the same call
with masks, never a copy of the model.
"""

import inspect
import numbers

import keras
import tensorflow as tf

from mgaug_tf.errors import ArgumentError

# Layers whose output is random in training (at a rate above 0): the learners call the network
# with training=True in the inner loop and (bn_mode="transductive") at test,
# and `stateless_call` does not advance their seed, so every call would drop
# the same units, silently, at evaluation too.
_RANDOM_LAYERS = (keras.layers.Dropout, keras.layers.SpatialDropout1D,
                  keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
                  keras.layers.GaussianNoise, keras.layers.GaussianDropout,
                  keras.layers.AlphaDropout)
_RECURRENT = (keras.layers.LSTM, keras.layers.GRU)


def _gpu_visible():
    return bool(tf.config.list_physical_devices("GPU"))


def _non_keras_attributes(layer):
    """Names of `layer`'s attributes that hold TensorFlow state Keras 3 does not track.

    A raw `tf.Variable`, a `tf.Module` or a `tf.keras` (Keras 2) layer is not
    in `trainable_variables`: the fast-weight path would leave it out.
    """
    found = []
    for name, value in vars(layer).items():
        values = value if isinstance(value, (list, tuple)) else (
            list(value.values()) if isinstance(value, dict) else [value])
        for item in values:
            if isinstance(item, tf.Variable) or (isinstance(item, tf.Module)
                                                and not isinstance(item, keras.layers.Layer)):
                found.append(f"{name} ({type(item).__name__})")
                break
    return found


def _random_arguments(layer):
    """`[(argument, value)]` of `layer`'s `dropout` and `recurrent_dropout` above 0.

    RNNs and attention take these; a `Bidirectional` has its wrapped layer's
    (its backward layer is a copy of the forward one).
    """
    source = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
    found = []
    for argument in ("dropout", "recurrent_dropout"):
        value = getattr(source, argument, 0)
        if isinstance(value, numbers.Real) and float(value) > 0:
            found.append((argument, float(value)))
    return found


def unsupported_layers(network, second_order=True, twice_differentiated=None):
    """The layers of `network` that the fast-weight path cannot run, with the reason.

    `call_with_weights` runs a Keras 3 layer on explicit weights through
    `Layer.stateless_call`; what it cannot substitute or differentiate is
    listed here (docs/models.md has the supported layers).

    Args:
        network: A Keras 3 layer or model (built or not: the layers that
            exist are checked).
        second_order: Whether meta-gradients differentiate through the inner
            loop's gradients (MAML, ANIL, Meta-SGD; not FOMAML or ProtoNet).
            Keras's batch, layer and group normalization have right first
            and wrong second derivatives: refused only when this is True.
        twice_differentiated: Whether the outer pass differentiates the
            inner loop's gradients through every layer (MAML, Meta-SGD; not
            ANIL, whose inner loop adapts the last layer only); None: as
            `second_order`. Keras's `Conv2D` and `SeparableConv2D` with a
            bias can make such a graph cyclic on oneDNN (not in float64,
            which oneDNN does not rewrite): refused only when this is True.

    Returns:
        A list of `(layer_name, reason)`, empty when every layer is supported.
    """
    # Imported here: the backbones import this module.
    from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
    from mgaug_tf.backbones.convolution import Conv2D
    from mgaug_tf.backbones.layer_norm import MetaLayerNormalization
    problems = []
    if twice_differentiated is None:
        twice_differentiated = second_order
    if not isinstance(network, keras.layers.Layer):
        return [(getattr(network, "name", type(network).__name__),
                 f"{type(network).__name__} is not a Keras 3 layer or model (keras.layers.Layer); "
                 "tf.keras (Keras 2) models and tf.Modules have no stateless_call")]
    covered = set()
    # `_flatten_layers` yields a layer before the layers it holds.
    for layer in network._flatten_layers(include_self=True, recursive=True):
        name = f"{layer.name} ({type(layer).__name__})"
        random_arguments = _random_arguments(layer)
        if (second_order and isinstance(layer, keras.layers.BatchNormalization)
                and not isinstance(layer, MetaBatchNormalization)):
            problems.append((name, "keras.layers.BatchNormalization computes its variance around "
                             "stop_gradient(mean) on TensorFlow, so second-order "
                             "meta-gradients through it are wrong (first-order learners accept "
                             "it); use mgaug_tf.MetaBatchNormalization (same arguments)"))
        elif (second_order and isinstance(layer, keras.layers.LayerNormalization)
              and not isinstance(layer, MetaLayerNormalization) and not layer.rms_scaling):
            problems.append((name, "keras.layers.LayerNormalization computes its variance "
                             "around stop_gradient(mean) on TensorFlow, so second-order "
                             "meta-gradients through it are wrong; use "
                             "mgaug_tf.MetaLayerNormalization (same arguments)"))
        elif second_order and isinstance(layer, keras.layers.GroupNormalization):
            problems.append((name, "keras.layers.GroupNormalization computes its variance "
                             "around stop_gradient(mean) on TensorFlow, so second-order "
                             "meta-gradients through it are wrong; use "
                             "mgaug_tf.MetaLayerNormalization, or a first-order learner"))
        elif (twice_differentiated and getattr(layer, "use_bias", False)
              and layer.compute_dtype != "float64"
              and isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D))
              and not isinstance(layer, Conv2D)):
            remedy = ("mgaug_tf.backbones.Conv2D (same arguments and weights) or use_bias=False"
                      if isinstance(layer, keras.layers.Conv2D) else
                      "use_bias=False (a batch norm's offset after it can play the bias's part)")
            problems.append((name, f"keras.layers.{type(layer).__name__}'s bias gradient "
                             "(BiasAddGrad) can be fused by TensorFlow's oneDNN rewrite with "
                             "the wrong one of a second-order step's two filter gradients, and "
                             "the step fails with 'N nodes in a cycle' (in some builds for "
                             f"MAML, most for Meta-SGD: docs/models.md); use {remedy}"))
        elif isinstance(layer, keras.layers.TFSMLayer):
            problems.append((name, "a TFSMLayer runs a SavedModel's graph on its own variables, "
                             "which stateless_call cannot replace with fast weights; rebuild "
                             "the model from Keras layers"))
        # A layer inside one refused for its dropout arguments (its cell, wrapped
        # layers or dropout sub-layer) is random for the same reason: counted once.
        elif id(layer) not in covered and isinstance(layer, _RANDOM_LAYERS) and float(
                getattr(layer, "rate", 0) or getattr(layer, "stddev", 0) or 0) > 0:
            problems.append((name, "it is random in training, and the learners call the "
                             "network with training=True in the inner loop (and at test with "
                             "bn_mode='transductive') without advancing its seed: remove it"))
        elif random_arguments and id(layer) not in covered:
            given = " and ".join(f"{argument}={value:g}" for argument, value in random_arguments)
            zero = " and ".join(f"{argument}=0" for argument, _ in random_arguments)
            whose = ("its wrapped layer's" if isinstance(layer, keras.layers.Bidirectional)
                     else "its")
            verb = "is" if len(random_arguments) == 1 else "are"
            problems.append((name, f"{whose} {given} {verb} random in training (see Dropout): "
                             f"build it with {zero}"))
            covered.update(id(sub) for sub in layer._flatten_layers(include_self=False,
                                                                    recursive=True))
        elif getattr(layer, "stateful", False) and isinstance(layer, keras.layers.RNN):
            problems.append((name, "a stateful RNN keeps its state in variables across calls, "
                             "so support and query passes (and tasks) would leak into each "
                             "other; build it with stateful=False"))
        elif (second_order and isinstance(layer, _RECURRENT)
              and (layer.use_cudnn is True or (layer.use_cudnn == "auto" and _gpu_visible()))):
            problems.append((name, "the cuDNN kernel (use_cudnn=True, or 'auto' with a GPU "
                             "visible) has no second derivative in TensorFlow, which "
                             "second-order meta-gradients need; build it with "
                             "use_cudnn=False"))
        else:
            untracked = _non_keras_attributes(layer)
            if untracked:
                problems.append((name, "it holds TensorFlow state that is not a Keras 3 "
                                 f"variable or layer ({', '.join(untracked)}), which the "
                                 "fast-weight path would leave out; use self.add_weight and "
                                 "Keras 3 layers"))
    return problems


def check_fast_weight_layers(network, owner=None, second_order=True, twice_differentiated=None):
    """Refuses a network that holds a layer the fast-weight path does not support.

    Called by the learners' constructors (and again by `build` for layers
    that building creates), before any work. `second_order` and
    `twice_differentiated` as `unsupported_layers` takes them.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `network`, the first
            unsupported layer (name and class) and why
            (`unsupported_layers`).
    """
    problems = unsupported_layers(network, second_order=second_order,
                                  twice_differentiated=twice_differentiated)
    if problems:
        name, reason = problems[0]
        others = [other for other, _ in problems[1:]]
        more = (f" (and {len(others)} more unsupported "
                f"{'layer' if len(others) == 1 else 'layers'}: {', '.join(others)})"
                if others else "")
        raise ArgumentError(
            "network", getattr(network, "name", network),
            f"must hold only layers that run on fast weights (docs/models.md), but layer "
            f"{name} cannot: {reason}{more}", owner=owner)


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
            `sliced_call`), e.g. `flatten_head="reference"` for a
            `FewShotClassifier`: settings of one caller that must not be
            written into a shared layer.

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
    weights = apply_masks(weights, masks)
    if _call_takes_training(layer):
        return layer.stateless_call(weights, list(non_trainable_weights), inputs,
                                    training=training, **call_options)
    # A `call` without `training` (a subclassed model may omit it) gets it from
    # Keras's call context, which `__call__` sets and `stateless_call` does not:
    # the same call in the same stateless scope that `stateless_call` opens.
    if len(weights) != len(layer.trainable_variables) or len(non_trainable_weights) != len(
            layer.non_trainable_variables):
        raise ValueError(f"{type(layer).__name__} has {len(layer.trainable_variables)} "
                         f"trainable and {len(layer.non_trainable_variables)} non-trainable "
                         f"variables; got {len(weights)} and {len(non_trainable_weights)} "
                         "values.")
    mapping = list(zip(layer.trainable_variables, weights)) + list(
        zip(layer.non_trainable_variables, non_trainable_weights))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        outputs = layer(inputs, training=training, **call_options)
    return outputs, [scope.get_current_value(variable)
                     for variable in layer.non_trainable_variables]


def _call_takes_training(layer):
    """Whether `layer.call` accepts a `training` argument (by name or `**kwargs`)."""
    parameters = inspect.signature(layer.call).parameters.values()
    return any(parameter.name == "training" or parameter.kind is parameter.VAR_KEYWORD
               for parameter in parameters)


def read_values(variables):
    """Current values of `variables` as tensors (recorded by an active tape)."""
    return [tf.convert_to_tensor(variable) for variable in variables]
