"""mgaug-tf: meta-learning with Meta-Gradient Augmentation for TensorFlow/Keras.

Public API:
    Learners: `MAML`, `FOMAML`, `ANIL`, `MetaSGD`, `ProtoNet`.
    Backbones: `Conv4`, `ResNet10`, `ResNet12`, `FewShotClassifier`.
    Meta-gradient augmentation: `MGAug` (masks and strategies in `augment`).
    Data: `data` (`data.load`, `data.episode_dataset`, the built-in `glyphs`).
    Configuration: `config` (typed `ExperimentConfig`), `presets`, `build_learner`
        and `build_backbone` (`factory`), names registered in `registry`.
    Saved learners: `load_model` (a `.keras` file, every class registered).
    Process setup: `configure_tensorflow` (`runtime`), called once by programs.
    The inner loop shared by every gradient-based learner: `inner_loop.adapt`.

Every name is imported on first use (PEP 562), so that `import mgaug_tf.config`
and `mgaug_tf.errors` load without TensorFlow: a program checks its settings
before it pays for TensorFlow's import.
"""

import importlib
import typing

__version__ = "0.1.0"

# Attribute -> (module, attribute in it, or None for the module itself).
_EXPORTS = {
    "ANIL": ("mgaug_tf.learners", "ANIL"),
    "ArgumentError": ("mgaug_tf.errors", "ArgumentError"),
    "Conv4": ("mgaug_tf.backbones", "Conv4"),
    "FOMAML": ("mgaug_tf.learners", "FOMAML"),
    "FewShotClassifier": ("mgaug_tf.backbones", "FewShotClassifier"),
    "MAML": ("mgaug_tf.learners", "MAML"),
    "MGAug": ("mgaug_tf.augment", "MGAug"),
    "MetaBatchNormalization": ("mgaug_tf.backbones", "MetaBatchNormalization"),
    "MetaLayerNormalization": ("mgaug_tf.backbones", "MetaLayerNormalization"),
    "MetaLearner": ("mgaug_tf.learners", "MetaLearner"),
    "MetaSGD": ("mgaug_tf.learners", "MetaSGD"),
    "ProtoNet": ("mgaug_tf.learners", "ProtoNet"),
    "ResNet10": ("mgaug_tf.backbones.resnet10", "ResNet10"),
    "ResNet12": ("mgaug_tf.backbones", "ResNet12"),
    "build_backbone": ("mgaug_tf.factory", "build_backbone"),
    "build_learner": ("mgaug_tf.factory", "build_learner"),
    "build_optimizer": ("mgaug_tf.factory", "build_optimizer"),
    "configure_tensorflow": ("mgaug_tf.runtime", "configure_tensorflow"),
    "load_model": ("mgaug_tf.saving", "load_model"),
}
_SUBMODULES = ("augment", "backbones", "config", "data", "episodes", "errors", "factory",
               "functional", "inner_loop", "learners", "presets", "registry", "runtime", "saving")

__all__ = sorted(list(_EXPORTS) + [name for name in _SUBMODULES
                                   if name not in ("backbones", "errors", "learners")],
                 key=str.lower)

if typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports
    from mgaug_tf import (augment, backbones, config, data, episodes, errors, factory,
                          functional, inner_loop, learners, presets, registry, runtime,
                          saving)
    from mgaug_tf.augment import MGAug
    from mgaug_tf.backbones import Conv4, FewShotClassifier, MetaBatchNormalization, ResNet12
    from mgaug_tf.backbones import MetaLayerNormalization
    from mgaug_tf.backbones.resnet10 import ResNet10
    from mgaug_tf.errors import ArgumentError
    from mgaug_tf.factory import build_backbone, build_learner, build_optimizer
    from mgaug_tf.learners import ANIL, FOMAML, MAML, MetaLearner, MetaSGD, ProtoNet
    from mgaug_tf.runtime import configure_tensorflow
    from mgaug_tf.saving import load_model


def __getattr__(name: str) -> typing.Any:
    """Imports `name` on first access and caches it as a module attribute."""
    if name.startswith("__"):  # probes (`__wrapped__`, `__path__` hooks) are not submodules
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _EXPORTS:
        module_name, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module_name), attribute)
    else:
        # Any submodule, as after an eager import (`mg.distribute`, `mg.training`).
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
