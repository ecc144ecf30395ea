"""ResNet-12: the field's second standard few-shot backbone."""

from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from mgaug_tf.backbones import piecewise
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
from mgaug_tf.backbones.pooling import check_input_size, feature_pooling
from mgaug_tf.checks import check_positive_integers
from mgaug_tf.errors import ArgumentError


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ResidualBlock(keras.layers.Layer):
    """Three 3x3 conv + BN (leaky ReLU 0.1 between), 1x1 conv shortcut, max-pool 2."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        policy = self.dtype_policy
        self.convs = [keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                          dtype=policy, name=f"conv{i}") for i in range(3)]
        self.norms = [MetaBatchNormalization(dtype=policy, name=f"bn{i}") for i in range(3)]
        self.shortcut_conv = keras.layers.Conv2D(width, 1, use_bias=False, dtype=policy,
                                                 name="shortcut_conv")
        self.shortcut_norm = MetaBatchNormalization(dtype=policy, name="shortcut_bn")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
        self.shortcut_conv.build(tuple(input_shape))
        self.shortcut_norm.build(shape)
        self.built = True

    def call(self, inputs, training=False, fused_batch_norm=None):
        x = inputs
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = norm(conv(x), training=training, fused=fused_batch_norm)
            if index < 2:
                x = piecewise.leaky_relu(x, 0.1)
        shortcut = self.shortcut_norm(self.shortcut_conv(inputs), training=training,
                                      fused=fused_batch_norm)
        x = piecewise.leaky_relu(x + shortcut, 0.1)
        return piecewise.max_pool(x, 2)

    def compute_output_shape(self, input_shape):
        height = None if input_shape[1] is None else input_shape[1] // 2
        width = None if input_shape[2] is None else input_shape[2] // 2
        return (input_shape[0], height, width, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width)
        return config


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ResNet12(keras.Model):
    """The standard few-shot ResNet-12 (widths 64-160-320-640).

    Args:
        widths: Output channels of the four residual blocks (positive
            integers).
        pooling: `"avg"` (global average pooling, the usual choice: 640
            features) or `"flatten"`.
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `widths` or `pooling` is out of its
            domain; `build` raises it (argument `input_shape`) for images
            smaller than `min_input_size`.

    Example:
        >>> backbone = ResNet12()
        >>> features = backbone(tf.zeros([2, 84, 84, 3]))  # shape [2, 640]
    """

    # Four blocks, each ending in a 2x2 max-pool: a smaller image leaves an
    # empty feature map.
    min_input_size = 16

    def __init__(self, widths: Sequence[int] = (64, 160, 320, 640), pooling: str = "avg",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(widths, (list, tuple)) or len(widths) != 4:
            raise ArgumentError("widths", widths,
                                "must be a sequence of 4 integers >= 1 (one per block)",
                                owner="ResNet12")
        check_positive_integers("widths", widths, owner="ResNet12")
        self.widths = tuple(int(width) for width in widths)
        self.pooling = pooling
        self.blocks = [ResidualBlock(width, dtype=self.dtype_policy, name=f"block{i}")
                       for i, width in enumerate(self.widths)]
        self.pool = feature_pooling(pooling, "ResNet12", self.dtype_policy)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        check_input_size(input_shape, self.min_input_size, "ResNet12")
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.pool.build(shape)
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], ...]:
        shape = tuple(input_shape)
        for block in self.blocks:
            shape = block.compute_output_shape(shape)
        return self.pool.compute_output_shape(shape)

    def feature_grid(self, height: Any, width: Any) -> tuple[Any, Any]:
        """Height and width of the last feature map for `height x width` inputs.

        Each block's 2x2 max-pool (stride 2, no padding) floors: 84 px -> 5 x 5.
        Accepts Python ints or integer tensors.
        """
        for _ in self.blocks:
            height, width = height // 2, width // 2
        return height, width

    def call(self, inputs: tf.Tensor, training: bool = False,
             fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """Features `[B, D]` of `[B, H, W, C]` images; `fused_batch_norm` as `Conv4.call`'s."""
        x = inputs
        for block in self.blocks:
            x = block(x, training=training, fused_batch_norm=fused_batch_norm)
        return self.pool(x)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(widths=list(self.widths), pooling=self.pooling)
        return config
