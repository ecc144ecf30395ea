"""A backbone followed by a linear head: the network of MAML-family learners."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mgaug_tf")
class FewShotClassifier(keras.Model):
    """`backbone` then a dense head with one logit per way.

    The split into `backbone` and `head` is what ANIL adapts (the head only)
    and what the fast-weights call relies on: the classifier's trainable
    weights are the backbone's followed by the head's.

    Args:
        backbone: A Keras model mapping images to feature vectors.
        n_way: Number of classes per episode.
        **kwargs: Standard model arguments (`name`, `dtype`).

    Example:
        >>> network = FewShotClassifier(Conv4(), n_way=5)
        >>> logits = network(tf.zeros([2, 84, 84, 3]))  # shape [2, 5]
    """

    def __init__(self, backbone, n_way, **kwargs):
        # The head computes in the backbone's precision unless told otherwise.
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(**kwargs)
        self.backbone = backbone
        self.n_way = n_way
        self.head = keras.layers.Dense(n_way, dtype=self.dtype_policy, name="head")

    def build(self, input_shape):
        if not self.backbone.built:  # already built when loaded from a .keras file
            self.backbone.build(tuple(input_shape))
        self.head.build(self.backbone.compute_output_shape(tuple(input_shape)))
        self.built = True

    def call(self, inputs, training=False):
        return self.head(self.backbone(inputs, training=training))

    @property
    def supports_grouped_call(self):
        """Whether `grouped_call` (the learners' vectorized path) is available."""
        return hasattr(self.backbone, "grouped_call")

    def grouped_call(self, weights, images):
        """Logits `[G, B, n_way]` of G weight copies on `images [G, B, H, W, C]`.

        See `Conv4.grouped_call`; `weights` are aligned with
        `trainable_variables`, each with a leading group axis.
        """
        if not self.supports_grouped_call:
            raise ValueError(f"{type(self.backbone).__name__} has no grouped_call, so it cannot "
                             "run the vectorized path; use the per-task path (vectorize=False).")
        features = self.backbone.grouped_call(weights[:-2], images)
        kernel, bias = (tf.cast(weight, features.dtype) for weight in weights[-2:])
        return tf.einsum("gbd,gdn->gbn", features, kernel) + bias[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone),
                      n_way=self.n_way)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
