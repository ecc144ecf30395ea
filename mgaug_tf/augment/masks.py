"""Functional pruning masks, in the spirit of TF-MOT's pruning API.

TF-MOT cannot be used with Keras 3 (it rejects Keras 3 layers and switches
the whole process to legacy Keras on import) and it prunes by assigning into
variables, one global mask per layer. Here a mask is a tensor multiplied into
the explicit weights inside the fast-weights forward pass (`w * m`): drawn per
task, fixed across that task's inner steps and query pass, never written into
the stored weights.

Pieces: which weights are prunable (`prunable_weights`), keep-ratio samplers
(`ReferenceKeepRatios`, `ConstantKeepRatio`, like TF-MOT's pruning
schedules), `strip` (bake masks into a copy of the weights, like TF-MOT's
`strip_pruning`) and `sparsity`.
"""

import keras
import numpy as np
import tensorflow as tf
# The base class of Keras 3's Conv1D/2D/3D (not exported).
from keras.src.layers.convolutional.base_conv import BaseConv

from mgaug_tf.checks import check_keep_bounds, check_keep_ratio


# Convolutions of any rank (Conv1D, Conv2D, Conv3D), whose kernels end in the
# output channels. Transposed, depthwise and separable convolutions count as
# other kernels (`include_dense`).
_CONVOLUTIONS = (BaseConv,)
# Layer attributes that hold a kernel (a weight matrix or tensor, not a bias,
# scale or statistic): dense and einsum kernels, recurrent cells' input and
# recurrent kernels, embedding tables, depthwise/separable kernels.
KERNEL_ATTRIBUTES = ("kernel", "recurrent_kernel", "embeddings", "depthwise_kernel",
                     "pointwise_kernel")


def is_convolution(layer):
    """Whether `layer` is a Keras Conv1D, Conv2D or Conv3D (or a subclass)."""
    return isinstance(layer, _CONVOLUTIONS)


def prunable_kernels(network, include_dense=False):
    """`{id(variable): layer}` for the kernels MGAug may mask, each with its layer.

    Args:
        network: A Keras model (its existing layers are read).
        include_dense: See `prunable_weights`.
    """
    owners = {}
    for layer in network._flatten_layers(include_self=True, recursive=True):
        convolution = is_convolution(layer)
        if not (convolution or include_dense):
            continue
        # A recurrent layer's kernels live on its cell; the layer is named for them.
        holders = [layer] + ([layer.cell] if isinstance(layer, keras.layers.RNN) else [])
        for holder in holders:
            for attribute in KERNEL_ATTRIBUTES if include_dense else ("kernel",):
                variable = getattr(holder, attribute, None)
                if isinstance(variable, keras.Variable) and variable.trainable:
                    owners.setdefault(id(variable), layer)
    return owners


def prunable_weights(network, include_dense=False):
    """Which of `network.trainable_variables` may be masked.

    By default the kernels of convolutions of any rank (Conv1D, Conv2D,
    Conv3D): the reference code masks convolution kernels only,
    not batch norm, biases or the head. With `include_dense`, every other
    kernel too: Dense and EinsumDense (MultiHeadAttention's projections)
    kernels, LSTM/GRU/SimpleRNN `kernel` and `recurrent_kernel`, Embedding
    `embeddings`, transposed, depthwise and pointwise convolution kernels
    (`KERNEL_ATTRIBUTES`).
    Biases, normalisation scales and offsets are never masked.

    Args:
        network: A built Keras model.
        include_dense: Also mask the non-convolution kernels.

    Returns:
        A list of bools aligned with `network.trainable_variables`.

    Example:
        >>> prunable_weights(FewShotClassifier(Conv4(), 5))  # the 4 conv kernels
    """
    prunable_ids = prunable_kernels(network, include_dense)
    return [id(variable) in prunable_ids for variable in network.trainable_variables]


@keras.saving.register_keras_serializable(package="mgaug_tf")
class KeepRatioSampler:
    """Draws the keep ratios r_1..r_K of a task's K sub-networks (a float64 tensor).

    Subclasses implement `__call__` and `bounds`, and `get_config` (the
    `__init__` arguments) if they have any, so that a learner using them
    saves to `.keras`; register them with
    `keras.saving.register_keras_serializable`.
    """

    def __call__(self, num_subnets, seed):
        raise NotImplementedError

    def bounds(self):
        """(smallest, largest) ratio this sampler can return."""
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ReferenceKeepRatios(KeepRatioSampler):
    """The reference code's rule: r_min plus K-1 draws from U(r_min, r_max).

    Sorted descending, so the smallest sub-network is always present
    (GradAug's "smallest + random" rule).

    Args:
        keep_min: Smallest keep ratio, in (0, 1].
        keep_max: Largest keep ratio, in [keep_min, 1].
        cap: Optional upper cap on each ratio (the reference code caps at
            0.999, 0.99 for ProtoNet; `None` keeps ratios as drawn).

    Example:
        >>> ReferenceKeepRatios(0.8, 1.0)(3, seed=[0, 1])  # e.g. [0.97, 0.86, 0.8]
    """

    def __init__(self, keep_min=0.8, keep_max=1.0, cap=None):
        owner = "ReferenceKeepRatios"
        check_keep_bounds(keep_min, keep_max, owner)
        if cap is not None:
            check_keep_ratio("cap", cap, owner)
        self.keep_min, self.keep_max, self.cap = float(keep_min), float(keep_max), cap

    def __call__(self, num_subnets, seed):
        draws = tf.random.stateless_uniform([num_subnets - 1], seed=seed, minval=self.keep_min,
                                            maxval=self.keep_max, dtype=tf.float64)
        ratios = tf.sort(tf.concat([[self.keep_min], draws], axis=0), direction="DESCENDING")
        if self.cap is not None:
            ratios = tf.minimum(ratios, self.cap)
        return ratios

    def bounds(self):
        top = self.keep_max if self.cap is None else min(self.keep_max, self.cap)
        low = self.keep_min if self.cap is None else min(self.keep_min, self.cap)
        return low, top

    def get_config(self):
        return {"keep_min": self.keep_min, "keep_max": self.keep_max, "cap": self.cap}


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ConstantKeepRatio(KeepRatioSampler):
    """Every sub-network keeps the same fraction `keep_ratio`."""

    def __init__(self, keep_ratio):
        check_keep_ratio("keep_ratio", keep_ratio, "ConstantKeepRatio")
        self.keep_ratio = float(keep_ratio)

    def __call__(self, num_subnets, seed):
        del seed
        return tf.fill([num_subnets], tf.constant(self.keep_ratio, tf.float64))

    def bounds(self):
        return self.keep_ratio, self.keep_ratio

    def get_config(self):
        return {"keep_ratio": self.keep_ratio}


def sparsity(masks, weights):
    """Fraction of masked-out entries over the masked weights (a scalar tensor)."""
    zeros, total = [], 0
    for mask, weight in zip(masks, weights):
        if mask is None:
            continue
        full = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(weight))
        zeros.append(tf.reduce_sum(1.0 - full))
        total += int(np.prod(weight.shape))
    if not zeros:
        return tf.constant(0.0)
    return tf.add_n(zeros) / float(total)


def strip(weights, masks):
    """Bakes masks into a copy of the weights (like TF-MOT's `strip_pruning`).

    Args:
        weights: Variables or tensors (e.g. `network.trainable_variables`).
        masks: Masks aligned with `weights` (`None` entries are copied as is).

    Returns:
        A list of numpy arrays: the sub-network's weights, for inspection or
        for `network.set_weights`-style export. The inputs are unchanged.

    Example:
        >>> sub_weights = strip(network.trainable_variables, masks)
    """
    return [np.asarray(weight) if mask is None
            else np.asarray(weight) * np.broadcast_to(np.asarray(mask), np.shape(weight))
            for weight, mask in zip(weights, masks)]
