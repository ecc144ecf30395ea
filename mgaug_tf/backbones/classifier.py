"""A backbone followed by a linear head: the network of MAML-family learners."""

from typing import Any, Optional, Self, Sequence

import keras
import tensorflow as tf

from mgaug_tf import choices, functional
from mgaug_tf.checks import check_flatten_head, check_n_way
from mgaug_tf.errors import ArgumentError
from mgaug_tf.interpolation import resize_align_corners

# How a flatten head serves the smaller feature maps of MGAug sub-networks
# that see lower resolutions (see `FewShotClassifier`).
FLATTEN_HEADS = choices.FLATTEN_HEADS


def reference_head_rows(full_grid, grid, channels):
    """Head kernel rows that the reference code multiplies a smaller feature map by.

    The reference code (PyTorch, channels-first) flattens a sub-network's
    `[C, h, w]` feature map to d = C * h * w features in NCHW order
    (index j = c * h * w + y * w + x) and multiplies them by the first d
    input rows of the full network's head kernel, whose NCHW flatten index on
    the full-resolution grid `[C, H, W]` is below d. Keras flattens
    channels-last, so feature i of the `[h, w, C]` map (i = (y * w + x) * C
    + c) and kernel row r of the `[H, W, C]` grid (r = (Y * W + X) * C + c')
    are numbered differently. The rule in this package's order:

        i -> (y, x, c) -> j = c * h * w + y * w + x
          -> (c', Y, X) = divmod of j over (C, H, W) -> row (Y * W + X) * C + c'.

    Worked example: C = 2 channels, full grid 2 x 2 (D = 8 rows), a
    sub-network's grid 1 x 1 (d = 2 features). Its features are channel 0
    (i = 0, j = 0) and channel 1 (i = 1, j = 1). Full NCHW indices 0 and 1
    are (c'=0, Y=0, X=0) and (c'=0, Y=0, X=1), Keras rows 0 and 2: the
    sub-network's channel 1 is multiplied by the row that the full network
    uses for channel 0 at position (0, 1). Rows 1 and 3-7 are unused (they get
    zero gradient from this sub-network).

    Args:
        full_grid: `(H, W)` of the full-resolution feature map (Python ints).
        grid: `(h, w)` of the smaller map (ints or scalar int tensors), with
            `h * w <= H * W`.
        channels: C.

    Returns:
        int32 tensor `[h * w * C]`: the kernel row (channels-last flatten
        index on the full grid) of each feature, in Keras flatten order.
    """
    full_h, full_w = full_grid
    height, width = (tf.cast(size, tf.int32) for size in grid)
    index = tf.range(height * width * channels)
    y, x, c = index // (width * channels), (index // channels) % width, index % channels
    nchw = c * height * width + y * width + x
    full_c, position = nchw // (full_h * full_w), nchw % (full_h * full_w)
    return position * channels + full_c


def _backbone_options(fused_batch_norm):
    # Passed only when set, so that backbones without the argument keep working.
    return {} if fused_batch_norm is None else {"fused_batch_norm": fused_batch_norm}


@keras.saving.register_keras_serializable(package="mgaug_tf")
class FewShotClassifier(keras.Model):
    """`backbone` then a dense head with one logit per way.

    The split into `backbone` and `head` is what ANIL adapts (the head only)
    and what the fast-weights call relies on: the classifier's trainable
    weights are the backbone's followed by the head's.

    A flatten head (the reference Conv-4's) expects the feature length of the
    image size it was built for (Conv4-64: 1600 at 84 px). MGAug sub-networks
    that see smaller images (`MGAug(resolutions=...)`) give shorter features
    (1024 at 64 px, 576 at 48 px); `flatten_head` says how the head serves
    them (`None` refuses them), and a caller may choose per call (`call`'s
    `flatten_head`, as a learner does with the one its MGAug resolved):

    - `"reference"`: the reference code's rule: the d features, taken in
      channels-first order, multiply the head kernel rows whose
      channels-first flatten index on the full-resolution grid is below d
      (`reference_head_rows` gives the mapping to Keras's channels-last
      order, with a worked example). Implemented by placing each feature at
      its row of a zero full-length vector and applying the unchanged head,
      so the head's kernel gets exact (zero for unused rows) gradients.
    - `"resize_features"`: a principled alternative (not in the reference):
      the last feature map is resized bilinearly (aligned corners) to the
      full-resolution grid before flattening, so every kernel row sees the
      channel and (interpolated) position it was trained for.

    Features of the built length always go straight to the head.

    Args:
        backbone: A Keras model mapping images to feature vectors.
        n_way: Number of classes per episode (the head's width), an integer >= 1.
        flatten_head: `None`, `"reference"` or `"resize_features"` (above):
            the default of calls that do not choose one.
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `n_way` or `flatten_head` is out of
            its domain.

    Example:
        >>> network = FewShotClassifier(Conv4(), n_way=5)
        >>> logits = network(tf.zeros([2, 84, 84, 3]))  # shape [2, 5]
    """

    def __init__(self, backbone: keras.Model, n_way: int, flatten_head: Optional[str] = None,
                 **kwargs: Any) -> None:
        # The head computes in the backbone's precision unless told otherwise.
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(**kwargs)
        check_flatten_head(flatten_head, owner="FewShotClassifier")
        # A 1-logit head is a legal Keras model (a learner refuses it: its n_way >= 2).
        check_n_way(n_way, owner="FewShotClassifier", minimum=1)
        self.backbone = backbone
        self.n_way = int(n_way)
        self.flatten_head = flatten_head
        # A backbone may name its reference's head initialisation (ResNet10: PyTorch's Linear).
        initializers: dict[str, Any] = getattr(backbone, "head_initializers", dict)()
        self.head = keras.layers.Dense(n_way, dtype=self.dtype_policy, name="head",
                                       **initializers)
        self.full_grid: Optional[tuple[int, ...]] = None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        input_shape = tuple(input_shape)
        if not self.backbone.built:  # already built when loaded from a .keras file
            self.backbone.build(input_shape)
        self.head.build(self.backbone.compute_output_shape(input_shape))
        if getattr(self.backbone, "pooling", None) == "flatten" and hasattr(
                self.backbone, "feature_grid") and None not in input_shape[1:3]:
            self.full_grid = tuple(int(size) for size in
                                   self.backbone.feature_grid(input_shape[1], input_shape[2]))
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], int]:
        """`(batch, n_way)` for images of `input_shape` `(batch, H, W, C)`."""
        return (tuple(input_shape)[0], self.n_way)

    def call(self, inputs: tf.Tensor, training: bool = False,
             flatten_head: Optional[str] = None,
             fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """Logits `[B, n_way]` of `[B, H, W, C]` images.

        Args:
            inputs: The images.
            training: Forwarded to the backbone (batch statistics).
            flatten_head: Overrides the classifier's `flatten_head` for this
                call (None: the classifier's own).
            fused_batch_norm: Forwarded to the backbone's call when not None
                (`Conv4.call`), overriding its batch norms' `fused`.
        """
        features = self.backbone(inputs, training=training,
                                 **_backbone_options(fused_batch_norm))
        if features.shape[-1] != self.head.kernel.shape[0]:  # another resolution
            shape = tf.shape(inputs)
            features = self.head_features(features, (shape[1], shape[2]), flatten_head)
        return self.head(features)

    def head_features(self, features: tf.Tensor, image_size: tuple[Any, Any],
                      flatten_head: Optional[str] = None) -> tf.Tensor:
        """`features` as the head's input: unchanged, or mapped per `flatten_head`.

        Args:
            features: `[B, d]` backbone features of `image_size` images
                (d may be unknown until run time).
            image_size: `(height, width)` of the images (ints or scalar
                tensors).
            flatten_head: The rule to use (None: the classifier's own
                `flatten_head`).

        Returns:
            `[B, D]`, D the head's input length.

        Raises:
            ValueError: The length differs (or is unknown) and `flatten_head`
                is `None`, or the backbone's feature grid is unknown.
        """
        rows = self.head.kernel.shape[0]
        if features.shape[-1] == rows:
            return features
        flatten_head = self.flatten_head if flatten_head is None else flatten_head
        if flatten_head is None or self.full_grid is None:
            raise ValueError(
                f"The head of this FewShotClassifier takes {rows} features (a flatten head "
                f"built for one image size) but got {features.shape[-1]} (another "
                "resolution). Choose how a flatten head serves smaller feature maps: "
                f"flatten_head in {FLATTEN_HEADS} (MGAug(flatten_head=...), or "
                "MGAug(parity=True) for the reference rule), or build the backbone with "
                "pooling='avg'.")
        full_h, full_w = self.full_grid
        channels = rows // (full_h * full_w)
        height, width = self.backbone.feature_grid(image_size[0], image_size[1])
        if flatten_head == "reference":
            # Feature i goes to row rows_of[i] of a zero full-length vector:
            # the head's matmul then multiplies it by exactly that kernel row.
            rows_of = reference_head_rows(self.full_grid, (height, width), channels)
            batch = tf.shape(features)[0]
            placed = tf.scatter_nd(rows_of[:, None], tf.transpose(features), [rows, batch])
            return tf.ensure_shape(tf.transpose(placed), [None, rows])
        feature_map = tf.reshape(features, [-1, height, width, channels])
        return tf.reshape(resize_align_corners(feature_map, full_h, full_w), [-1, rows])

    @property
    def supports_sliced_call(self) -> bool:
        """Whether `sliced_call` (MGAug's sliced width execution) is available."""
        return hasattr(self.backbone, "sliced_call")

    def sliced_call(self, weights: Sequence[tf.Tensor], non_trainable: Sequence[tf.Tensor], inputs: tf.Tensor,
                    masks: Sequence[tf.Tensor], training: bool = False, flatten_head: Optional[str] = None,
                    fused_batch_norm: Optional[bool | str] = None) -> tf.Tensor:
        """The channel-masked classifier with its backbone run on kept channels.

        The backbone's `sliced_call` (e.g. `Conv4.sliced_call`) gives the
        masked network's full-width features; the head then serves them as
        `call` does (resolution rules of `head_features`), with its own
        masks applied as `functional.apply_masks` does.

        Args:
            weights, non_trainable: Tensors aligned with
                `trainable_variables` and `non_trainable_variables`.
            inputs: `[B, H, W, C]` images.
            masks: Masks aligned with `weights` (per-output-channel kernel
                masks, `None` elsewhere).
            training: Forwarded to the backbone.
            flatten_head, fused_batch_norm: As `call`'s.

        Returns:
            `(logits, new_non_trainable)`, as `stateless_call` returns them.

        Raises:
            ValueError: The backbone has no `sliced_call`.
        """
        if not self.supports_sliced_call:
            raise ValueError(f"{type(self.backbone).__name__} has no sliced_call: its "
                             "sub-networks run masked (MGAug width_execution='masked').")
        split = len(self.backbone.trainable_variables)
        features, new_non_trainable = self.backbone.sliced_call(
            weights[:split], non_trainable, inputs, masks[:split], training=training,
            **_backbone_options(fused_batch_norm))
        if features.shape[-1] != self.head.kernel.shape[0]:  # another resolution
            shape = tf.shape(inputs)
            features = self.head_features(features, (shape[1], shape[2]), flatten_head)
        logits, _ = self.head.stateless_call(
            functional.apply_masks(list(weights[split:]), list(masks[split:])), [], features)
        return logits, new_non_trainable

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone),
                      n_way=self.n_way, flatten_head=self.flatten_head)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
