"""Backbones usable as plain Keras models and through fast weights."""

from mgaug_tf.backbones.batch_norm import MetaBatchNormalization
from mgaug_tf.backbones.classifier import FewShotClassifier
from mgaug_tf.backbones.conv4 import Conv4
from mgaug_tf.backbones.convolution import Conv2D
from mgaug_tf.backbones.layer_norm import MetaLayerNormalization
from mgaug_tf.backbones.mlp import MLP, FewShotRegressor
from mgaug_tf.backbones.resnet12 import ResidualBlock, ResNet12

__all__ = ["Conv2D", "Conv4", "FewShotClassifier", "FewShotRegressor", "MLP",
           "MetaBatchNormalization", "MetaLayerNormalization", "ResNet12", "ResidualBlock"]
