"""From a config to objects: the backbone, MGAug, the learner and the outer optimizer.

The only functions that turn `mgaug_tf.config` sections into library objects,
used by the command-line program, the benchmarks and the tests alike.
Values are validated by the constructors they reach (their checks that need
no TensorFlow are `mgaug_tf.checks`'s, which `checks.check_config` runs on a
whole config first); a refused value comes back as a
`config.ConfigFieldError` naming the config fields it came from.

Example:
    >>> from mgaug_tf import config, factory
    >>> model = config.ModelConfig(mgaug=config.MGAugConfig("catfish", num_subnets=2))
    >>> learner = factory.build_learner(model, (28, 28, 1))
"""

from typing import Optional, Sequence

import keras

from mgaug_tf import config as config_lib
from mgaug_tf import checks, registry
from mgaug_tf.augment.mgaug import MGAug
from mgaug_tf.backbones.classifier import FewShotClassifier
from mgaug_tf.backbones.mlp import FewShotRegressor
from mgaug_tf.learners.base import MetaLearner
from mgaug_tf.learners.gradient import GradientLearner


def _registered(lookup, name, path):
    """`lookup(name)` from the registry; an unknown name names its config field."""
    try:
        return lookup(name)
    except ValueError as error:
        raise config_lib.ConfigFieldError((path,), str(error)) from None


def _model_argument_paths(backbone_config):
    """`{constructor argument: (config paths)}` for every constructor `build_learner` calls."""
    _, backbone_fields = _registered(registry.backbone_builder, backbone_config.name,
                                     "model.backbone.name")
    paths = dict(checks.MGAUG_PATHS)
    paths.update(checks.LEARNER_PATHS)
    paths.update({"filters": ("model.backbone.filters",), "pooling": ("model.backbone.pooling",),
                  "hidden_units": ("model.backbone.hidden_units",),
                  "dtype": ("model.backbone.dtype",),
                  "fused_batch_norm": ("model.backbone.fused_batch_norm",),
                  "input_shape": (checks.IMAGE_SIZE,),
                  "include_dense": ("model.mgaug.include_dense",),
                  # The objective follows the dataset; the learner may not take it.
                  "objective": ("data.dataset", "model.learner.name")})
    paths.update({argument: (f"model.backbone.{field}",)
                  for argument, field in backbone_fields.items()})
    return paths


def build_backbone(backbone_config: config_lib.BackboneConfig) -> keras.Model:
    """The backbone a `BackboneConfig` describes (unbuilt).

    Raises:
        config.ConfigFieldError: An unknown backbone name, or a value the
            backbone's constructor refused.
    """
    builder, _ = _registered(registry.backbone_builder, backbone_config.name,
                             "model.backbone.name")
    kwargs = {"dtype": backbone_config.dtype}
    if backbone_config.pooling is not None:
        kwargs["pooling"] = backbone_config.pooling
    with checks.fields_of(_model_argument_paths(backbone_config)):
        return builder(backbone_config, **kwargs)


def build_augmentation(mgaug_config: config_lib.MGAugConfig, image_size: Optional[int],
                       seed: int = 0) -> Optional[MGAug]:
    """The `MGAug` an `MGAugConfig` describes, or None when its strategy is "none".

    Args:
        mgaug_config: A `config.MGAugConfig`.
        image_size: The full network's input size in pixels (the largest
            resolution allowed), or None when not known yet.
        seed: Base seed of MGAug's draws (`TrainerConfig.seed`).

    Raises:
        config.ConfigFieldError: A value MGAug's constructor refused.
    """
    if not mgaug_config.enabled:
        return None
    with checks.fields_of(dict(checks.MGAUG_PATHS,
                               include_dense=("model.mgaug.include_dense",))):
        return MGAug(**checks.mgaug_arguments(mgaug_config, image_size),
                     include_dense=mgaug_config.include_dense, seed=seed)


def build_learner(model_config: config_lib.ModelConfig,
                  image_shape: Optional[Sequence[int]] = None,
                  seed: int = 0, objective: str = "classification",
                  output_size: int = 1) -> MetaLearner:
    """The learner a `ModelConfig` describes, built for examples of `image_shape`.

    Gradient-based learners get the backbone with a linear head
    (`FewShotClassifier` of `n_way` logits, or for regression
    `FewShotRegressor` of `output_size` values); metric learners (ProtoNet)
    the backbone alone.

    Args:
        model_config: A `config.ModelConfig`.
        image_shape: The shape of one example: `(height, width, channels)`
            of the full network's input images (`DataConfig.image_size`, or
            the dataset's own size), or any other shape (`(1,)` for the
            sinusoid tasks); or None to return the learner unbuilt (Keras
            builds it on first use); the constructors' checks run either way.
            MGAug checks its resolutions against the image size of a 3-axis
            shape only.
        seed: Base seed of MGAug's draws (`TrainerConfig.seed`); the weights'
            initialisation follows Keras's global seed.
        objective: `"classification"` or `"regression"` (mean squared
            error; `n_way` is not used: the learner gets `n_way=None`). The
            program derives it from the dataset
            (`mgaug_tf.data.load.dataset_objective`).
        output_size: Regression: values predicted per example (the targets'
            last axis).

    Returns:
        A `mgaug_tf.MetaLearner`, built when `image_shape` is given, not compiled.

    Raises:
        config.ConfigFieldError: An unknown backbone or learner name, or a
            value a constructor refused, naming the config fields it came from
            (e.g. `model.mgaug.keep_min`).
    """
    backbone = build_backbone(model_config.backbone)
    image_size = (image_shape[0] if image_shape is not None and len(image_shape) == 3
                  else None)
    augmentation = build_augmentation(model_config.mgaug, image_size, seed=seed)
    learner_config = model_config.learner
    learner_class = _registered(registry.learner_class, learner_config.name,
                                "model.learner.name")
    regression = objective == "regression"
    n_way = None if regression else learner_config.n_way
    common = {"bn_mode": learner_config.bn_mode, "task_reduction": learner_config.task_reduction,
              "augmentation": augmentation, "parallel_tasks": learner_config.parallel_tasks}
    if objective != "classification":  # so that learners without the argument keep working
        common["objective"] = objective
    with checks.fields_of(_model_argument_paths(model_config.backbone)):
        if issubclass(learner_class, GradientLearner):
            network = (FewShotRegressor(backbone, output_size) if regression
                       else FewShotClassifier(backbone, learner_config.n_way))
            learner = learner_class(network, n_way,
                                    inner_lr=learner_config.inner_lr,
                                    inner_steps=learner_config.inner_steps,
                                    eval_inner_steps=learner_config.eval_inner_steps,
                                    recompute=learner_config.recompute,
                                    log_before_adaptation=learner_config.log_before_adaptation,
                                    **common)
        else:
            for name in ("recompute", "log_before_adaptation"):
                if getattr(learner_config, name):
                    raise config_lib.ConfigFieldError(
                        (f"model.learner.{name}",),
                        f"{name} applies to the gradient-based learners "
                        f"({learner_config.name} has no inner loop).")
            learner = learner_class(backbone, n_way, **common)
        if image_shape is not None:
            learner.build(tuple(image_shape))
    return learner


def build_optimizer(optimizer_config: config_lib.OptimizerConfig
                    ) -> keras.optimizers.Optimizer:
    """The outer-loop Keras optimizer an `OptimizerConfig` describes.

    A `decay_steps` > 0 gives a staircase `ExponentialDecay` schedule, a
    function of the optimizer's iteration count, which checkpoints hold, so
    a resumed run continues the same schedule.

    Raises:
        config.ConfigFieldError: An unknown optimizer name, a learning rate
            that is not positive, a decay rate outside (0, 1] or a momentum
            Keras refuses.
    """
    checks.check_optimizer_config(optimizer_config)
    learning_rate = optimizer_config.learning_rate
    if optimizer_config.decay_steps:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, optimizer_config.decay_steps, optimizer_config.decay_rate,
            staircase=True)
    optimizer_class = _registered(registry.optimizer_class, optimizer_config.name,
                                  "optimizer.name")
    if optimizer_class is not keras.optimizers.SGD:
        return optimizer_class(learning_rate)
    try:
        return optimizer_class(learning_rate, momentum=optimizer_config.momentum)
    except ValueError as error:  # Keras checks the momentum
        raise config_lib.ConfigFieldError(("optimizer.momentum",), str(error)) from None
