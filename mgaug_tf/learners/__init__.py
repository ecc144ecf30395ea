"""Meta-learners: Keras models whose `train_step` is a meta-step."""

from mgaug_tf.learners.anil import ANIL
from mgaug_tf.learners.base import MetaLearner, TaskOutcome
from mgaug_tf.learners.gradient import GradientLearner
from mgaug_tf.learners.maml import FOMAML, MAML
from mgaug_tf.learners.meta_sgd import MetaSGD
from mgaug_tf.learners.protonet import ProtoNet, prototype_logits

__all__ = ["ANIL", "FOMAML", "GradientLearner", "MAML", "MetaLearner", "MetaSGD",
           "ProtoNet", "TaskOutcome", "prototype_logits"]
