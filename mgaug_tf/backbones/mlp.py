"""MLP: dense layers over flattened examples of any shape, and the regression network."""

from typing import Any, Optional, Self, Sequence

import keras
import tensorflow as tf

from mgaug_tf.backbones import piecewise
from mgaug_tf.checks import check_integer, check_positive_integers

# Finn et al. (2017), section 5.1: "2 hidden layers of size 40 with ReLU".
FINN_HIDDEN_UNITS = (40, 40)


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MLP(keras.Model):
    """Flatten, then one Dense layer with ReLU per entry of `hidden_units`.

    Takes examples of any shape: vectors `[B, D]`, sequences `[B, T, D]`,
    images `[B, H, W, C]` are flattened to `[B, prod(shape)]` first. With
    `FewShotClassifier` it classifies (e.g. array data); with
    `FewShotRegressor` it regresses (the sinusoid tasks, where Finn et al.
    used `hidden_units=(40, 40)`).

    Args:
        hidden_units: Widths of the hidden layers, a non-empty sequence of
            integers >= 1 (default `FINN_HIDDEN_UNITS`).
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `hidden_units` is not a non-empty
            sequence of integers >= 1.

    Example:
        >>> backbone = MLP(hidden_units=(40, 40))
        >>> features = backbone(tf.zeros([10, 1]))  # shape [10, 40]
    """

    def __init__(self, hidden_units: Sequence[int] = FINN_HIDDEN_UNITS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_positive_integers("hidden_units", hidden_units, owner="MLP")
        self.hidden_units = tuple(int(units) for units in hidden_units)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.dense_layers = [keras.layers.Dense(units, dtype=self.dtype_policy,
                                                name=f"dense{index}")
                             for index, units in enumerate(self.hidden_units)]
        # The package's ReLU: the same values, no zero second-derivative tensors.
        self.activations = [piecewise.ReLU(dtype=self.dtype_policy) for _ in self.hidden_units]

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        shape = self.flatten.compute_output_shape(tuple(input_shape))
        for dense in self.dense_layers:
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], int]:
        """`(batch, hidden_units[-1])` for examples of any shape."""
        return (tuple(input_shape)[0], self.hidden_units[-1])

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Features `[B, hidden_units[-1]]` of `[B, ...]` examples."""
        x = self.flatten(inputs)
        for dense, activation in zip(self.dense_layers, self.activations):
            x = activation(dense(x))
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(hidden_units=list(self.hidden_units))
        return config


@keras.saving.register_keras_serializable(package="mgaug_tf")
class FewShotRegressor(keras.Model):
    """`backbone` then a linear head of `output_size` values: the regression network.

    The sibling of `FewShotClassifier` for `objective="regression"`, with
    the same split into `backbone` and `head` (ANIL adapts the head only;
    the trainable weights are the backbone's followed by the head's).

    Args:
        backbone: A Keras model mapping examples to feature vectors `[B, D]`.
        output_size: Values predicted per example (the targets' last axis; 1 for
            the sinusoid tasks), an integer >= 1.
        **kwargs: Standard model arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `output_size` is not an integer >= 1.

    Example:
        >>> network = FewShotRegressor(MLP((40, 40)), output_size=1)
        >>> predictions = network(tf.zeros([10, 1]))  # shape [10, 1]
    """

    def __init__(self, backbone: keras.Model, output_size: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(**kwargs)
        check_integer("output_size", output_size, owner="FewShotRegressor")
        self.backbone = backbone
        self.output_size = int(output_size)
        self.head = keras.layers.Dense(self.output_size, dtype=self.dtype_policy, name="head")

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        input_shape = tuple(input_shape)
        if not self.backbone.built:  # already built when loaded from a .keras file
            self.backbone.build(input_shape)
        self.head.build(self.backbone.compute_output_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> tuple[Optional[int], int]:
        """`(batch, output_size)`."""
        return (tuple(input_shape)[0], self.output_size)

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Predictions `[B, output_size]` of `[B, ...]` examples."""
        return self.head(self.backbone(inputs, training=training))

    def head_features(self, features: tf.Tensor, image_size: Any = None,
                      flatten_head: Optional[str] = None) -> tf.Tensor:
        """`features` unchanged: this head has no resolution rule (`FewShotClassifier`'s has).

        Raises:
            ValueError: `features` are not the head's input length.
        """
        rows = self.head.kernel.shape[0]
        if features.shape[-1] != rows:
            raise ValueError(f"The head of this FewShotRegressor takes {rows} features but got "
                             f"{features.shape[-1]}.")
        return features

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone),
                      output_size=self.output_size)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
