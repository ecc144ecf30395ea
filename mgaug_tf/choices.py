"""The names that settings choose from, defined without TensorFlow.

`mgaug_tf.config` validates a setting against these before anything imports
TensorFlow (a program parses and checks its flags first); the modules that
implement each choice re-export the tuple under the name they always had
(`pooling.POOLINGS`, `mgaug.RESIZE_METHODS`, ...).
"""

# Feature pooling of a backbone (`backbones.pooling`).
POOLINGS = ("flatten", "avg")
# ResNet-10's last pooling (`backbones.resnet10`): the whole last map, or the
# reference code's AvgPool2d(5) window.
FINAL_POOLS = ("global", "reference")
# Batch-norm statistics during adaptation (`learners.base`).
BN_MODES = ("transductive", "inductive")
# How a meta-batch's task meta-gradients combine (`learners.base`).
TASK_REDUCTIONS = ("sum", "mean")
# What a learner's tasks ask for (`learners.base`): class labels (cross-entropy)
# or real-valued targets (mean squared error).
OBJECTIVES = ("classification", "regression")
# MGAug's pruning strategies (`augment.strategies.STRATEGIES` maps them to functions).
MGAUG_STRATEGIES = ("random_width", "random_param", "catfish", "snip")
# How MGAug combines the sub-networks' meta-gradients (`augment.mgaug`).
MGAUG_REDUCTIONS = ("sum", "mean", "maxup")
# How random_width sub-networks run (`augment.mgaug`).
WIDTH_EXECUTIONS = ("auto", "sliced", "masked")
# Resizing of sub-network inputs (`augment.mgaug`).
RESIZE_METHODS = ("align_corners", "half_pixel")
# How a flatten head serves smaller feature maps (`backbones.classifier`).
FLATTEN_HEADS = ("reference", "resize_features")
# `tf.distribute` strategies (`distribute`).
DISTRIBUTION_STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
