"""The one place where names become classes: backbones, learners, outer optimizers.

`mgaug_tf.factory` looks up here the classes that config names
(`BackboneConfig.name`, `LearnerConfig.name`, `OptimizerConfig.name`). A
project adds its own with `register_backbone` or `register_learner` before it
builds a config that names them; `mgaug-train --backbone=NAME` accepts any
name registered by the time the config is built (a program that registers
its own names and then calls `mgaug_tf_cli.train.main()`).

A backbone is a Keras model that maps examples (images `[B, H, W, C]`, or
any `[B, ...]` for `mlp`) to features `[B, D]`. The learners run it on fast
weights with `stateless_call`, so its forward pass must read its weights through its layers (a model built from
Keras layers does); batch norm should be `MetaBatchNormalization`, since
Keras's own gives wrong second-order meta-gradients.
`mgaug_tf.gradient_check.FiniteDifferences` checks a new backbone's
meta-gradients.
"""

import keras

from mgaug_tf.config import BackboneConfig
from mgaug_tf.errors import ArgumentError
from mgaug_tf.backbones.conv4 import Conv4
from mgaug_tf.backbones.mlp import FINN_HIDDEN_UNITS, MLP
from mgaug_tf.backbones.resnet10 import ResNet10
from mgaug_tf.backbones.resnet12 import ResNet12
from mgaug_tf.learners.anil import ANIL
from mgaug_tf.learners.maml import FOMAML, MAML
from mgaug_tf.learners.meta_sgd import MetaSGD
from mgaug_tf.learners.protonet import ProtoNet

_DEFAULT_FILTERS = BackboneConfig().filters
# `BackboneConfig.fused_batch_norm` -> the backbones' `fused_batch_norm` argument.
_FUSED_BATCH_NORM = {"auto": "auto", "on": True, "off": False}


def _conv4(config, **kwargs):
    _refuse_final_pool(config, "conv4")
    _refuse_hidden_units(config, "conv4")
    if len(config.filters) != 1:
        raise ArgumentError("filters", config.filters, "takes one value for conv4 (the filters "
                            "of every convolution)", owner="conv4")
    fused = _FUSED_BATCH_NORM[config.fused_batch_norm]
    return Conv4(filters=config.filters[0], fused_batch_norm=fused, **kwargs)


def _resnet12(config, **kwargs):
    _refuse_final_pool(config, "resnet12")
    _refuse_hidden_units(config, "resnet12")
    widths = config.filters
    if len(widths) not in (1, 4):
        raise ArgumentError("filters", widths, "takes one base width w, giving (w, 2.5w, 5w, "
                            "10w), or the four stage widths for resnet12", owner="resnet12")
    if config.fused_batch_norm != "auto":
        raise ArgumentError("fused_batch_norm", config.fused_batch_norm, "is conv4's option; "
                            "resnet12 takes 'auto'", owner="resnet12")
    if len(widths) == 1:  # one base width w: the (w, 2.5w, 5w, 10w) of Oreshkin et al.
        widths = tuple(int(widths[0] * scale) for scale in (1, 2.5, 5, 10))
    return ResNet12(widths=widths, **kwargs)


def _resnet10(config, **kwargs):
    _refuse_hidden_units(config, "resnet10")
    widths = config.filters
    if len(widths) not in (1, 4):
        raise ArgumentError("filters", widths, "takes one base width w, giving (w, 2w, 4w, 8w), "
                            "or the four stage widths for resnet10", owner="resnet10")
    if "pooling" in kwargs:
        raise ArgumentError("pooling", kwargs["pooling"], "does not apply to resnet10, which "
                            "averages its last map to a fixed feature length (no flatten head); "
                            "choose its pool with final_pool", owner="resnet10")
    if len(widths) == 1:  # one base width w: the reference's (64, 128, 256, 512) at w = 64
        widths = tuple(widths[0] * scale for scale in (1, 2, 4, 8))
    fused = _FUSED_BATCH_NORM[config.fused_batch_norm]
    if config.final_pool is not None:
        kwargs["final_pool"] = config.final_pool
    return ResNet10(widths=widths, fused_batch_norm=fused, **kwargs)


def _mlp(config, **kwargs):
    # The convolutional backbones' options mean nothing to Dense layers: refused,
    # never ignored (filters by comparison with its default, the value not given).
    _refuse_final_pool(config, "mlp")
    if config.filters != _DEFAULT_FILTERS:
        raise ArgumentError("filters", config.filters, "is the convolutional backbones' "
                            "option; mlp takes its layer widths from hidden_units", owner="mlp")
    if "pooling" in kwargs:
        raise ArgumentError("pooling", kwargs["pooling"], "does not apply to mlp, which "
                            "flattens its input", owner="mlp")
    if config.fused_batch_norm != "auto":
        raise ArgumentError("fused_batch_norm", config.fused_batch_norm, "does not apply to "
                            "mlp, which has no batch norm; it takes 'auto'", owner="mlp")
    return MLP(hidden_units=config.hidden_units or FINN_HIDDEN_UNITS, **kwargs)


def _refuse_hidden_units(config, owner):
    if config.hidden_units:
        raise ArgumentError("hidden_units", config.hidden_units, f"is mlp's option; {owner} "
                            "takes its widths from filters", owner=owner)


def _refuse_final_pool(config, owner):
    if config.final_pool is not None:
        raise ArgumentError("final_pool", config.final_pool, f"is resnet10's option; {owner} "
                            "pools by pooling", owner=owner)


# name -> (builder(BackboneConfig, **kwargs) -> backbone, {constructor argument: config field})
_BACKBONES = {"conv4": (_conv4, {"final_pool": "final_pool"}),
              "resnet12": (_resnet12, {"widths": "filters", "final_pool": "final_pool"}),
              "resnet10": (_resnet10, {"widths": "filters", "final_pool": "final_pool"}),
              "mlp": (_mlp, {"hidden_units": "hidden_units", "final_pool": "final_pool"})}
_LEARNERS = {"maml": MAML, "fomaml": FOMAML, "anil": ANIL, "metasgd": MetaSGD,
             "protonet": ProtoNet}
_OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def register_backbone(name, builder, argument_fields=None):
    """Makes `name` a backbone that configs can name.

    Args:
        name: The name (`BackboneConfig.name`, `--backbone`).
        builder: `builder(backbone_config, pooling=..., dtype=...) -> keras.Model`;
            `pooling` is passed only when the config sets it, so the
            backbone's own default applies otherwise.
        argument_fields: `{constructor argument: BackboneConfig field}` for
            arguments that the builder derives from a field under another
            name, so that an `ArgumentError` names the field (`filters`,
            `pooling` and `dtype` are mapped already).
    """
    _BACKBONES[name] = (builder, dict(argument_fields or {}))


def register_learner(name, learner_class):
    """Makes `name` a learner that configs can name (a `MetaLearner` subclass)."""
    _LEARNERS[name] = learner_class


def _lookup(table, kind, name):
    if name not in table:
        hint = (f" (a project adds its own with mgaug_tf.registry.register_{kind})"
                if kind in ("backbone", "learner") else "")
        raise ValueError(f"Unknown {kind} {name!r}; expected one of {sorted(table)}{hint}.")
    return table[name]


def backbone_builder(name):
    """`(builder, argument_fields)` registered for `name`. Raises ValueError if unknown."""
    return _lookup(_BACKBONES, "backbone", name)


def learner_class(name):
    """The learner class registered for `name`. Raises ValueError if unknown."""
    return _lookup(_LEARNERS, "learner", name)


def optimizer_class(name):
    """The Keras optimizer class registered for `name`. Raises ValueError if unknown."""
    return _lookup(_OPTIMIZERS, "optimizer", name)
