"""Conv-4: the standard few-shot backbone of MAML and ProtoNet."""

from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from mgaug_tf.backbones import convolution, piecewise, sliced
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization, batch_normalize, check_fused
from mgaug_tf.backbones.pooling import check_input_size, feature_pooling
from mgaug_tf.checks import check_integer


@keras.saving.register_keras_serializable(package="mgaug_tf")
class Conv4(keras.Model):
    """Four blocks of [3x3 conv with bias, batch norm, ReLU, 2x2 max-pool].

    Works for any input size of at least `min_input_size` and any channel
    count: 84x84 RGB gives 5x5x64 = 1600 features, 28x28 grayscale gives
    1x1x64 = 64.

    Args:
        filters: Filters per convolution, one integer >= 1 for every block
            (32 or 64 in the literature).
        pooling: `"flatten"` (the reference code's head input) or `"avg"`
            (global average pooling: a feature length independent of the input
            size, needed when sub-networks see other resolutions).
        fused_batch_norm: `MetaBatchNormalization`'s `fused` (`"auto"`: the
            fused kernel in float32 and 16-bit, exact to second order;
            `False`: plain ops, exact to every order; float64 always plain).
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `filters`, `pooling` or
            `fused_batch_norm` is out of its domain; `build` raises it
            (argument `input_shape`) for images smaller than `min_input_size`.

    Example:
        >>> backbone = Conv4(filters=64)
        >>> features = backbone(tf.zeros([2, 84, 84, 3]))  # shape [2, 1600]
    """

    # Four 2x2 max-pools: a smaller image leaves an empty feature map.
    min_input_size = 16

    def __init__(self, filters: int = 64, pooling: str = "flatten",
                 fused_batch_norm: bool | str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_integer("filters", filters, owner="Conv4")
        check_fused(fused_batch_norm, "fused_batch_norm", owner="Conv4")
        self.filters = int(filters)
        self.pooling = pooling
        self.fused_batch_norm = fused_batch_norm
        self.blocks: list[list[Any]] = []
        for index in range(4):
            self.blocks.append([
                convolution.Conv2D(filters, 3, padding="same", use_bias=True,
                                   dtype=self.dtype_policy, name=f"conv{index}"),
                MetaBatchNormalization(fused=fused_batch_norm, dtype=self.dtype_policy,
                                       name=f"bn{index}"),
                piecewise.ReLU(dtype=self.dtype_policy),
                piecewise.MaxPooling2D(2, dtype=self.dtype_policy),
            ])
        self.pool = feature_pooling(pooling, "Conv4", self.dtype_policy)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        check_input_size(input_shape, self.min_input_size, "Conv4")
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.pool.build(shape)
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], ...]:
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                shape = layer.compute_output_shape(shape)
        return self.pool.compute_output_shape(shape)

    def feature_grid(self, height: Any, width: Any) -> tuple[Any, Any]:
        """Height and width of the last feature map for `height x width` inputs.

        Each of the four 2x2 max-pools (stride 2, no padding) floors:
        84 px -> 5 x 5, 64 px -> 4 x 4, 48 px -> 3 x 3, 15 px -> 0 x 0 (empty).
        Accepts Python ints or integer tensors (sizes drawn at run time).
        """
        for _ in self.blocks:
            height, width = height // 2, width // 2
        return height, width

    def call(self, inputs: tf.Tensor, training: bool = False,
             fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """Features `[B, D]` of `[B, H, W, C]` images.

        `fused_batch_norm` (if not None) overrides every batch norm's `fused`
        for this call, so that a caller can choose the kernel without
        changing a shared network.
        """
        x = inputs
        for conv, norm, relu, pool in self.blocks:
            x = pool(relu(norm(conv(x), training=training, fused=fused_batch_norm)))
        return self.pool(x)

    def sliced_call(self, weights: Sequence[tf.Tensor], non_trainable: Sequence[tf.Tensor], inputs: tf.Tensor,
                    masks: Sequence[tf.Tensor], training: bool = False,
                    fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """The channel-masked network, computed on the kept channels only.

        Equal to `stateless_call(apply_masks(weights, masks), non_trainable,
        inputs, training)` (to rounding) for per-output-channel 0/1 kernel
        masks (MGAug's `random_width`), but each convolution runs on the kept
        output channels and, of its input, the previous layer's kept
        channels: about r^2 of its FLOPs. Removed channels are the constants
        the masked pass computes for them (see `backbones.sliced`); the last
        map is reassembled to full width before the pooling.

        Args:
            weights: Tensors aligned with `trainable_variables` (full shapes).
            non_trainable: Tensors aligned with `non_trainable_variables`.
            inputs: `[B, H, W, C_in]` images.
            masks: Aligned with `weights`: `None` or a `[1, 1, 1, filters]`
                mask for each kernel, `None` for biases and batch norm.
            training: Batch statistics (and updated moving statistics) or
                moving statistics, as `call`.
            fused_batch_norm: As `call`'s.

        Returns:
            `(features, new_non_trainable)` as `stateless_call` returns them.

        Raises:
            ValueError: A mask is not a per-output-channel kernel mask.
        """
        dtype = self.compute_dtype
        x = tf.cast(inputs, dtype)
        kept_in = None  # every input channel of the first convolution is present
        removed_in = values_in = None
        new_statistics = []
        for index, (conv, norm, relu, pool) in enumerate(self.blocks):
            kernel, bias, gamma, beta = weights[4 * index:4 * index + 4]
            kernel_mask = masks[4 * index]
            if any(mask is not None for mask in masks[4 * index + 1:4 * index + 4]):
                raise ValueError(f"Sliced width execution masks convolution kernels only; "
                                 f"block {index} of {self.name} got masks on its bias or "
                                 "batch norm.")
            moving_mean, moving_variance = non_trainable[2 * index:2 * index + 2]
            kept, removed = sliced.channel_indices(kernel_mask, kernel)
            kernel = tf.cast(kernel, dtype)
            options = dict(strides=conv.strides, padding=conv.padding.upper(),
                           dilations=conv.dilation_rate)
            columns = tf.gather(kernel, kept, axis=3)
            rows = columns if kept_in is None else tf.gather(columns, kept_in, axis=2)
            y = tf.nn.conv2d(x, rows, **options) + tf.cast(sliced.take(bias, kept), dtype)
            if kept_in is not None:
                y += sliced.constant_input_conv(
                    (tf.shape(x)[1], tf.shape(x)[2]), tf.gather(columns, removed_in, axis=2),
                    values_in, **options)
            y, mean, variance = batch_normalize(
                y, sliced.take(gamma, kept), sliced.take(beta, kept),
                sliced.take(moving_mean, kept), sliced.take(moving_variance, kept), norm.epsilon,
                norm.fused if fused_batch_norm is None else fused_batch_norm, training)
            x = pool(relu(y))
            # A removed channel's convolution output is its bias, a constant map:
            # batch statistics give beta, moving statistics the affine map of it.
            removed_bias = sliced.take(bias, removed)
            removed_beta = sliced.take(beta, removed)
            if training:
                removed_out = removed_beta
                new_statistics += [
                    norm.momentum * moving_mean + (1.0 - norm.momentum) * tf.cast(
                        tf.stop_gradient(sliced.assemble_vector(
                            mean, tf.cast(removed_bias, mean.dtype), kept, removed,
                            conv.filters)), moving_mean.dtype),
                    norm.momentum * moving_variance + (1.0 - norm.momentum) * tf.cast(
                        tf.stop_gradient(sliced.assemble_vector(
                            variance, tf.zeros_like(removed_bias, variance.dtype), kept,
                            removed, conv.filters)), moving_variance.dtype)]
            else:
                removed_gamma = tf.cast(sliced.take(gamma, removed), removed_beta.dtype)
                removed_out = ((tf.cast(removed_bias, removed_beta.dtype)
                                - sliced.take(moving_mean, removed))
                               * removed_gamma * tf.math.rsqrt(
                                   sliced.take(moving_variance, removed) + norm.epsilon)
                               + removed_beta)
                new_statistics += [moving_mean, moving_variance]
            # The activation and the max-pool keep a constant map constant.
            values_in = relu(tf.cast(removed_out, dtype))
            kept_in, removed_in = kept, removed
        x = sliced.assemble_channels(x, values_in, kept_in, removed_in, self.filters)
        return self.pool(x), new_statistics

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, pooling=self.pooling,
                      fused_batch_norm=self.fused_batch_norm)
        return config
