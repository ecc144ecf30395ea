"""ResNet-10: the MGAug reference code's second backbone (Chen et al. 2019's, 224 px).

The network of "A Closer Look at Few-shot Classification" (Chen et al., ICLR
2019; CloserLookFewShot `backbone.py`, `ResNet10`) as the MGAug reference code
releases it (`net/resnet.py`): a 7x7 stride-2 stem, a 3x3 stride-2 max-pool,
four stages of one residual block each, and an average pool to a feature
vector of the last stage's width (512). PyTorch pads convolutions and the
max-pool symmetrically (`padding=1`, `padding=3`), which is not Keras's
`"same"` on a stride-2 layer with an even input (Keras pads the bottom and
right only); here every stride-2 layer pads explicitly, as PyTorch does.
"""

import math
from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from mgaug_tf import choices
from mgaug_tf.backbones import piecewise
from mgaug_tf.backbones.batch_norm import MetaBatchNormalization, check_fused
from mgaug_tf.checks import check_positive_integers
from mgaug_tf.errors import ArgumentError

# "reference": the reference code's AvgPool2d(5) (stride 5) on the last map;
# "global": the average over the whole last map (CloserLook's AvgPool2d(7) at 224 px).
FINAL_POOLS = choices.FINAL_POOLS
# The reference pool's window (and stride) on the last feature map.
REFERENCE_POOL_WINDOW = 5
# The reference pool gives one window (a 512-feature vector) only for last
# maps of 5 to 9 entries a side; a 10-entry map would give a 2 x 2 grid.
_REFERENCE_MAX_GRID = 2 * REFERENCE_POOL_WINDOW - 1
# Five stride-2 layers (stem, max-pool, blocks 2-4) between the image and the last map.
_STRIDED_LAYERS = 5


def _output_side(size, kernel, stride, padding):
    """PyTorch's output length of a convolution or pool (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def _strided(size, kernel, stride, padding):
    """`_output_side` of a known side; None (an unknown side) stays None."""
    return None if size is None else _output_side(size, kernel, stride, padding)


def _pad(inputs, padding, value=0.0):
    """Pads height and width of NHWC `inputs` by `padding` on every side, as PyTorch does."""
    return tf.pad(inputs, [[0, 0], [padding, padding], [padding, padding], [0, 0]],
                  constant_values=value)


def reference_conv_initializer(kernel_size, filters):
    """The reference's `init_layer` for a convolution: N(0, sqrt(2 / (k * k * filters)))."""
    return keras.initializers.RandomNormal(
        stddev=math.sqrt(2.0 / (kernel_size * kernel_size * filters)))


def _conv(filters, kernel_size, stride, padding, dtype, name):
    """A bias-free `Conv2D` with the reference's initialisation, to run through `_apply`.

    Stride-1 convolutions with odd kernels use Keras's `"same"` (PyTorch's
    symmetric padding without a padded copy of the input); strided ones are
    `"valid"` and `_apply` pads them explicitly by `padding`.
    """
    same = stride == 1 and 2 * padding == kernel_size - 1
    conv = keras.layers.Conv2D(
        filters, kernel_size, strides=stride, padding="same" if same else "valid",
        use_bias=False, kernel_initializer=reference_conv_initializer(kernel_size, filters),
        dtype=dtype, name=name)
    return conv, 0 if same else padding


def _apply(conv, padding, inputs):
    return conv(_pad(inputs, padding) if padding else inputs)


def _padded_shape(shape, padding):
    """`shape` (NHWC) after `_pad`: a "valid" convolution is built on the padded input it sees."""
    batch, height, width, channels = shape
    # A 1-wide stride-1 "window" over the padded side: the side grown by 2 * padding.
    return (batch, _strided(height, 1, 1, padding), _strided(width, 1, 1, padding), channels)


@keras.saving.register_keras_serializable(package="mgaug_tf")
class BasicBlock(keras.layers.Layer):
    """CloserLook's `SimpleBlock`: conv-BN-ReLU-conv-BN plus the shortcut, then ReLU.

    Both convolutions are 3x3 without bias (padding 1; the first has stride
    `stride`). The shortcut is the identity when the block keeps the width
    and the resolution, else a 1x1 convolution with stride `stride` and
    batch norm. The reference adds the projection when the width changes,
    which in ResNet-10 (64-128-256-512) is exactly where the stride is 2;
    here a stride-2 block of unchanged width (possible with other `widths`)
    also gets one, since an identity cannot halve the map.

    Args:
        in_width: Input channels; width: output channels (integers >= 1).
        stride: 1 or 2.
        fused_batch_norm: `MetaBatchNormalization`'s `fused`.
        **kwargs: Standard layer arguments (`name`, `dtype`).
    """

    def __init__(self, in_width, width, stride=1, fused_batch_norm="auto", **kwargs):
        super().__init__(**kwargs)
        self.in_width, self.width, self.stride = int(in_width), int(width), int(stride)
        self.fused_batch_norm = fused_batch_norm
        policy = self.dtype_policy

        def norm(name):
            return MetaBatchNormalization(fused=fused_batch_norm, dtype=policy, name=name)

        # Attribute order is the order of the trainable variables, and so of
        # MGAug's masks: C1, BN1, C2, BN2, shortcut, BNshortcut, as the
        # reference registers them.
        self.conv1, self.padding1 = _conv(self.width, 3, self.stride, 1, policy, "conv1")
        self.bn1 = norm("bn1")
        self.conv2, self.padding2 = _conv(self.width, 3, 1, 1, policy, "conv2")
        self.bn2 = norm("bn2")
        self.shortcut_conv = self.shortcut_bn = None
        if self.in_width != self.width or self.stride != 1:
            # The 1x1 stride-s convolution runs as a subsample then a stride-1
            # convolution (the same function): TensorFlow's oneDNN filter gradient
            # of a strided 1x1 convolution corrupts the heap on some even inputs
            # with few channels (e.g. 16 x 16 x 4, stride 2).
            self.shortcut_conv, _ = _conv(self.width, 1, 1, 0, policy, "shortcut_conv")
            self.shortcut_bn = norm("shortcut_bn")

    def build(self, input_shape):
        shape = tuple(input_shape)
        inner = self.compute_output_shape(shape)
        self.conv1.build(_padded_shape(shape, self.padding1))
        self.bn1.build(inner)
        self.conv2.build(inner)
        self.bn2.build(inner)
        if self.shortcut_conv is not None:
            self.shortcut_conv.build(self._subsampled_shape(shape))
            self.shortcut_bn.build(inner)
        self.built = True

    def call(self, inputs, training=False, fused_batch_norm=None):
        x = _apply(self.conv1, self.padding1, inputs)
        x = piecewise.relu(self.bn1(x, training=training, fused=fused_batch_norm))
        x = self.bn2(_apply(self.conv2, self.padding2, x), training=training,
                     fused=fused_batch_norm)
        shortcut = inputs
        if self.shortcut_conv is not None:
            subsampled = inputs[:, ::self.stride, ::self.stride, :]
            shortcut = self.shortcut_bn(self.shortcut_conv(subsampled), training=training,
                                        fused=fused_batch_norm)
        return piecewise.relu(x + shortcut)

    def _subsampled_shape(self, shape):
        """`shape` after taking every `stride`-th row and column (the shortcut's input)."""
        batch, height, width, channels = shape
        return (batch, _strided(height, 1, self.stride, 0), _strided(width, 1, self.stride, 0),
                channels)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, _strided(height, 3, self.stride, 1), _strided(width, 3, self.stride, 1),
                self.width)

    def get_config(self):
        config = super().get_config()
        config.update(in_width=self.in_width, width=self.width, stride=self.stride,
                      fused_batch_norm=self.fused_batch_norm)
        return config


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ResNet10(keras.Model):
    """ResNet-10 of Chen et al. 2019 as the MGAug reference code releases it.

    A 7x7 stride-2 convolution (padding 3, no bias) to `widths[0]` channels,
    batch norm, ReLU and a 3x3 stride-2 max-pool (padding 1); then four
    `BasicBlock`s of widths `widths`, the first convolution of blocks 2-4
    with stride 2; then `final_pool` to `[B, widths[-1]]` features (512 with
    the default widths, at every input size). Paddings are PyTorch's
    (symmetric, explicit on stride-2 layers: `"same"` would pad even inputs
    bottom-right only). Batch norm is `MetaBatchNormalization` (exact second
    order) with PyTorch's momentum 0.1 and epsilon 1e-5.

    Initialisation as the reference's `init_layer`: every convolution kernel
    N(0, sqrt(2 / (k * k * out_channels))), batch norm gamma 1 and beta 0.
    A `FewShotClassifier` on this backbone initialises its head as PyTorch's
    default `nn.Linear` (`head_initializers`), the reference's classifier.

    Args:
        widths: Output channels of the four blocks (integers >= 1); the stem
            has `widths[0]` channels (64 in the reference, equal to the first
            block's width, whose shortcut is then the identity).
        final_pool: `"global"` (default: the average over the whole last
            map, CloserLook's `AvgPool2d(7)` at 224 px; any input size) or
            `"reference"` (the reference code's `AvgPool2d(5)`, stride 5: at
            224 px it averages only the top-left 5 x 5 of the 7 x 7 map; at
            192 px the top-left 5 x 5 of 6 x 6; at 160 and 140 px all of
            5 x 5). The default is CloserLook's because the reference's
            window drops 24 of the 49 positions at its own image size, which
            reads as a porting slip (CloserLook pools 7) rather than a
            design, and it refuses images outside 129-288 px; the configs
            that reproduce the released runs (`--mgaug_parity`) choose
            `"reference"`.
        fused_batch_norm: `MetaBatchNormalization`'s `fused` ("auto", True or
            False; see `Conv4`).
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `widths`, `final_pool` or
            `fused_batch_norm` is out of its domain; `build` raises it
            (argument `input_shape`) for images the pool cannot take
            (`final_pool="reference"`: sides of 129 to 288 px, whose last map
            is 5 to 9 entries a side).

    Example:
        >>> backbone = ResNet10()
        >>> features = backbone(tf.zeros([2, 224, 224, 3]))  # shape [2, 512]
    """

    # The features are averages, of one length at every input size: a
    # FewShotClassifier head needs no resolution rule (no flatten head).
    pooling = "avg"

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), final_pool: str = "global",
                 fused_batch_norm: bool | str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = "ResNet10"
        if not isinstance(widths, (list, tuple)) or len(widths) != 4:
            raise ArgumentError("widths", widths,
                                "must be a sequence of 4 integers >= 1 (one per block)",
                                owner=owner)
        check_positive_integers("widths", widths, owner=owner)
        if final_pool not in FINAL_POOLS:
            raise ArgumentError("final_pool", final_pool, f"must be one of {FINAL_POOLS}",
                                owner=owner)
        check_fused(fused_batch_norm, "fused_batch_norm", owner=owner)
        self.widths = tuple(int(width) for width in widths)
        self.final_pool = final_pool
        self.fused_batch_norm = fused_batch_norm
        policy = self.dtype_policy
        self.stem_conv, self.stem_padding = _conv(self.widths[0], 7, 2, 3, policy, "stem_conv")
        self.stem_bn = MetaBatchNormalization(fused=fused_batch_norm, dtype=policy,
                                              name="stem_bn")
        in_widths = (self.widths[0],) + self.widths[:-1]
        self.blocks = [BasicBlock(in_width, width, stride=1 if index == 0 else 2,
                                  fused_batch_norm=fused_batch_norm, dtype=policy,
                                  name=f"block{index}")
                       for index, (in_width, width) in enumerate(zip(in_widths, self.widths))]

    @property
    def min_input_size(self) -> int:
        """Smallest image side in pixels: 129 for the reference pool (a 5 x 5 last map), else 1."""
        if self.final_pool == "global":
            return 1
        return self.smallest_side_for_grid(REFERENCE_POOL_WINDOW)

    @property
    def max_input_size(self) -> Optional[int]:
        """Largest image side in pixels (the reference pool: 288, a 9 x 9 last map), or None."""
        if self.final_pool == "global":
            return None
        return self.smallest_side_for_grid(_REFERENCE_MAX_GRID + 1) - 1

    def smallest_side_for_grid(self, grid: int) -> int:
        """The smallest image side whose last feature map has at least `grid` entries a side."""
        # `feature_grid` maps a side s to ceil(s / 2**5), so grid - 1 full
        # strides of 2**5 pixels plus one.
        return max(1, (grid - 1) * 2 ** _STRIDED_LAYERS + 1)

    def feature_grid(self, height: Any, width: Any) -> tuple[Any, Any]:
        """Height and width of the last feature map (before the pool) for `height x width` inputs.

        Each stride-2 layer (stem, max-pool, blocks 2-4) maps a side s to
        floor((s - 1) / 2) + 1: 224 px -> 7, 192 -> 6, 160 and 140 -> 5,
        129 -> 5, 128 -> 4. Accepts Python ints or integer tensors.
        """
        for _ in range(_STRIDED_LAYERS):  # stem, max-pool and three strided blocks
            height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
        return height, width

    def _check_input_shape(self, input_shape):
        shape = tuple(input_shape)
        sides = [int(size) for size in shape[1:3] if size is not None] if len(shape) == 4 else []
        low, high = self.min_input_size, self.max_input_size
        if len(shape) != 4 or any(side < low or (high is not None and side > high)
                                  for side in sides):
            if self.final_pool == "reference":
                expected = (f"must be (batch, height, width, channels) with height and width of "
                            f"{low} to {high} px for final_pool='reference' (the reference's "
                            f"AvgPool2d({REFERENCE_POOL_WINDOW}) needs a last feature map of "
                            f"{REFERENCE_POOL_WINDOW} to {_REFERENCE_MAX_GRID} entries a side "
                            "to give one feature vector; final_pool='global' takes any size)")
            else:
                expected = "must be (batch, height, width, channels)"
            raise ArgumentError("input_shape", shape, expected, owner="ResNet10")

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self._check_input_shape(input_shape)
        shape = tuple(input_shape)
        self.stem_conv.build(_padded_shape(shape, self.stem_padding))
        shape = self._stem_shape(shape)
        self.stem_bn.build(shape)
        shape = self._pool_shape(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.built = True

    def _stem_shape(self, shape):
        batch, height, width, _ = shape
        return (batch, _strided(height, 7, 2, 3), _strided(width, 7, 2, 3), self.widths[0])

    @staticmethod
    def _pool_shape(shape):
        batch, height, width, channels = shape
        return (batch, _strided(height, 3, 2, 1), _strided(width, 3, 2, 1), channels)

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], int]:
        return (tuple(input_shape)[0], self.widths[-1])

    def feature_map(self, inputs: tf.Tensor, training: bool = False,
                    fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """The last feature map `[B, h, w, widths[-1]]` of `[B, H, W, C]` images (before the pool)."""
        x = _apply(self.stem_conv, self.stem_padding, inputs)
        x = piecewise.relu(self.stem_bn(x, training=training, fused=fused_batch_norm))
        # PyTorch's max-pool pads with -inf: the padding is never a window's maximum.
        x = piecewise.max_pool(_pad(x, 1, float("-inf")), 3, 2)
        for block in self.blocks:
            x = block(x, training=training, fused_batch_norm=fused_batch_norm)
        return x

    def call(self, inputs: tf.Tensor, training: bool = False,
             fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """Features `[B, widths[-1]]` of `[B, H, W, C]` images; `fused_batch_norm` as `Conv4.call`'s."""
        x = self.feature_map(inputs, training=training, fused_batch_norm=fused_batch_norm)
        if self.final_pool == "reference":
            # AvgPool2d(5, stride 5) on a last map of 5 to 9 entries a side is
            # its top-left window alone (the input size is checked at build and
            # MGAug's resolutions against min_input_size).
            x = x[:, :REFERENCE_POOL_WINDOW, :REFERENCE_POOL_WINDOW, :]
        return tf.reduce_mean(x, axis=[1, 2])

    def head_initializers(self) -> dict[str, keras.initializers.Initializer]:
        """PyTorch's default `nn.Linear` initialisation, the reference classifier's.

        Kernel and bias uniform in +-1 / sqrt(fan_in), fan_in = `widths[-1]`
        (kaiming_uniform with a = sqrt(5) and PyTorch's bias rule).

        Returns:
            `{"kernel_initializer": ..., "bias_initializer": ...}` for a
            `keras.layers.Dense` on these features.
        """
        bound = 1.0 / math.sqrt(self.widths[-1])
        return {"kernel_initializer": keras.initializers.VarianceScaling(
                    scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
                "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(widths=list(self.widths), final_pool=self.final_pool,
                      fused_batch_norm=self.fused_batch_norm)
        return config
