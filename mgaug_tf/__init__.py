"""mgaug-tf: meta-learning with Meta-Gradient Augmentation for TensorFlow/Keras.

Public API:
    Learners: `MAML`, `FOMAML`, `ANIL`, `MetaSGD`, `ProtoNet`.
    Backbones: `Conv4`, `ResNet12`, `FewShotClassifier`.
    Meta-gradient augmentation: `MGAug` (masks and strategies in `augment`).
    Configuration: `config` (typed `ExperimentConfig`), `build_learner` and
        `build_backbone` (`factory`), names registered in `registry`.
    Process setup: `configure_tensorflow` (`runtime`), called once by programs.
    The inner loop shared by every gradient-based learner: `inner_loop.adapt`.
"""

from mgaug_tf import augment, config, episodes, factory, functional, inner_loop, registry, runtime
from mgaug_tf.augment import MGAug
from mgaug_tf.backbones import Conv4, FewShotClassifier, MetaBatchNormalization, ResNet12
from mgaug_tf.errors import ArgumentError
from mgaug_tf.factory import build_backbone, build_learner, build_optimizer
from mgaug_tf.learners import ANIL, FOMAML, MAML, MetaLearner, MetaSGD, ProtoNet
from mgaug_tf.runtime import configure_tensorflow

__version__ = "0.1.0"

__all__ = ["ANIL", "ArgumentError", "Conv4", "FOMAML", "FewShotClassifier", "MAML", "MGAug",
           "MetaBatchNormalization", "MetaLearner", "MetaSGD", "ProtoNet", "ResNet12",
           "augment", "build_backbone", "build_learner", "build_optimizer", "config",
           "configure_tensorflow", "episodes", "factory", "functional", "inner_loop",
           "registry", "runtime"]
