"""Conv-4: the standard few-shot backbone of MAML and ProtoNet."""

import keras

from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
from mgaug_tf.backbones.pooling import feature_pooling


@keras.saving.register_keras_serializable(package="mgaug_tf")
class Conv4(keras.Model):
    """Four blocks of [3x3 conv with bias, batch norm, ReLU, 2x2 max-pool].

    Works for any input size and channel count: 84x84 RGB gives 5x5x64 = 1600
    features, 28x28 grayscale gives 1x1x64 = 64.

    Args:
        filters: Filters per convolution (32 or 64 in the literature).
        pooling: `"flatten"` (the reference code's head input) or `"avg"`
            (global average pooling: a feature length independent of the input
            size, needed when sub-networks see other resolutions).
        fused_batch_norm: `MetaBatchNormalization`'s `fused` (`"auto"`: the
            fused kernel under mixed precision; `True`: in float32 too).
        **kwargs: Standard model arguments (`name`, `dtype`).

    Example:
        >>> backbone = Conv4(filters=64)
        >>> features = backbone(tf.zeros([2, 84, 84, 3]))  # shape [2, 1600]
    """

    def __init__(self, filters=64, pooling="flatten", fused_batch_norm="auto", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.pooling = pooling
        self.fused_batch_norm = fused_batch_norm
        self.blocks = []
        for index in range(4):
            self.blocks.append([
                keras.layers.Conv2D(filters, 3, padding="same", use_bias=True,
                                    dtype=self.dtype_policy, name=f"conv{index}"),
                MetaBatchNormalization(fused=fused_batch_norm, dtype=self.dtype_policy,
                                       name=f"bn{index}"),
                keras.layers.ReLU(dtype=self.dtype_policy),
                keras.layers.MaxPooling2D(2, dtype=self.dtype_policy),
            ])
        self.pool = feature_pooling(pooling, "Conv4", self.dtype_policy)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.pool.build(shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                shape = layer.compute_output_shape(shape)
        return self.pool.compute_output_shape(shape)

    def feature_grid(self, height, width):
        """Height and width of the last feature map for `height x width` inputs.

        Each of the four 2x2 max-pools (stride 2, no padding) floors:
        84 px -> 5 x 5, 64 px -> 4 x 4, 48 px -> 3 x 3, 15 px -> 0 x 0 (empty).
        Accepts Python ints or integer tensors (sizes drawn at run time).
        """
        for _ in self.blocks:
            height, width = height // 2, width // 2
        return height, width

    def call(self, inputs, training=False):
        x = inputs
        for conv, norm, relu, pool in self.blocks:
            x = pool(relu(norm(conv(x), training=training)))
        return self.pool(x)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, pooling=self.pooling,
                      fused_batch_norm=self.fused_batch_norm)
        return config
