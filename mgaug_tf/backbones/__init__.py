"""Backbones usable as plain Keras models and through fast weights."""

from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
from mgaug_tf.backbones.classifier import FewShotClassifier
from mgaug_tf.backbones.conv4 import Conv4
from mgaug_tf.backbones.resnet12 import ResidualBlock, ResNet12

__all__ = ["Conv4", "FewShotClassifier", "MetaBatchNormalization", "ResNet12",
           "ResidualBlock", "get_backbone"]


def get_backbone(name, **kwargs):
    """Builds a backbone from its name (`"conv4"` or `"resnet12"`).

    Example:
        >>> backbone = get_backbone("conv4", filters=32)
    """
    backbones = {"conv4": Conv4, "resnet12": ResNet12}
    if name not in backbones:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(backbones)}.")
    return backbones[name](**kwargs)
