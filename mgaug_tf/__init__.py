"""mgaug-tf: meta-learning with Meta-Gradient Augmentation for TensorFlow/Keras.

Public API:
    Learners: `MAML`, `FOMAML`, `ANIL`, `MetaSGD`, `ProtoNet`.
    Backbones: `Conv4`, `ResNet12`, `FewShotClassifier`.
    Meta-gradient augmentation: `MGAug` (masks and strategies in `augment`).
    The inner loop shared by every gradient-based learner: `inner_loop.adapt`.
"""

from mgaug_tf import augment, episodes, functional, inner_loop
from mgaug_tf.augment import MGAug
from mgaug_tf.backbones import (Conv4, FewShotClassifier, MetaBatchNormalization, ResNet12,
                                get_backbone)
from mgaug_tf.learners import ANIL, FOMAML, MAML, MetaLearner, MetaSGD, ProtoNet

__version__ = "0.1.0"

__all__ = ["MGAug", "augment", "ANIL", "Conv4", "FOMAML", "FewShotClassifier", "MAML", "MetaBatchNormalization",
           "MetaLearner", "MetaSGD", "ProtoNet", "ResNet12", "episodes", "functional",
           "get_backbone", "inner_loop"]
