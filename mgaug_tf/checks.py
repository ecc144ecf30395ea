"""Constructor argument checks that need no TensorFlow, and a config's pass over them.

The constructors (`MGAug`, `ReferenceKeepRatios`, the learners, the
backbones) call these functions, so each rule is written once; because this
module imports no TensorFlow, a program can run the same checks on its whole
config (`check_config`) before it pays for TensorFlow's import, and a
mistyped value is answered at once. Checks that need a built network
(resolutions against a backbone's smallest input, a flatten head) stay with
the objects that know it.
"""

import contextlib
import numbers

from mgaug_tf import choices
from mgaug_tf import config as config_lib
from mgaug_tf.errors import ArgumentError


# ------------------------------------------------------------ numbers
def is_integer(value):
    """Whether `value` is an integer (Python or NumPy), not a bool, float, string or sequence."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(argument, value, owner, minimum=1):
    """Returns `value` if it is an integer >= `minimum`: the library's one integer check.

    Refuses values of any other type (sequences, strings, floats such as
    8.5 or 8.0, bools) with one wording, "must be an integer >= minimum"
    (e.g. `n_way` of a learner, minimum 2; `filters`, minimum 1).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `argument` otherwise.
    """
    if not is_integer(value) or value < minimum:
        raise ArgumentError(argument, value, f"must be an integer >= {minimum}", owner=owner)
    return value


def check_n_way(n_way, owner, minimum=2):
    """`check_integer` for `n_way`: classes per episode (a learner needs at least 2).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `n_way`.
    """
    return check_integer("n_way", n_way, owner, minimum=minimum)


def check_objective(objective, n_way, owner):
    """A learner's `objective` and the `n_way` it implies.

    Classification needs `n_way`, an integer >= 2 (`check_n_way`);
    regression has no classes, so `n_way` must be None.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `objective` (not one of
            `choices.OBJECTIVES`) or `n_way`.
    """
    if not isinstance(objective, str) or objective not in choices.OBJECTIVES:
        raise ArgumentError("objective", objective, f"must be one of {choices.OBJECTIVES}",
                            owner=owner)
    if objective == "regression":
        if n_way is not None:
            raise ArgumentError("n_way", n_way,
                                "must be None with objective='regression' (the targets are "
                                "real values, not classes)", owner=owner)
        return None
    return check_n_way(n_way, owner)


def check_positive_integers(argument, values, owner):
    """Returns `values` if it is a non-empty list or tuple of integers >= 1.

    A single integer is `check_integer`'s; here anything but a list or tuple
    of integers (a bare int, a string, floats, bools) is refused.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `argument` otherwise.
    """
    if (not isinstance(values, (list, tuple)) or not values
            or any(not is_integer(item) or item < 1 for item in values)):
        raise ArgumentError(argument, values,
                            "must be a non-empty sequence of integers >= 1", owner=owner)
    return values


def check_keep_ratio(name, value, owner=None):
    """Refuses a keep ratio outside (0, 1].

    Raises:
        mgaug_tf.errors.ArgumentError: Naming the argument `name`.
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 < float(value) <= 1.0):
        raise ArgumentError(name, value, "must be a keep ratio in (0, 1]", owner=owner)


def check_keep_bounds(keep_min, keep_max, owner=None):
    """Refuses keep ratios `keep_min`, `keep_max` outside (0, 1] or with keep_min > keep_max.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `keep_min` or `keep_max`.
    """
    check_keep_ratio("keep_min", keep_min, owner)
    check_keep_ratio("keep_max", keep_max, owner)
    if keep_min > keep_max:
        raise ArgumentError("keep_max", keep_max,
                            f"must be at least keep_min ({keep_min})", owner=owner)


# The channel counts images are converted to: grey (Pillow's "L") or RGB.
CHANNELS = (1, 3)


def check_channels(channels, owner=None):
    """Returns `channels` if it is 1 (grey) or 3 (RGB): the readers convert images to these.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `channels` otherwise.
    """
    if not is_integer(channels) or channels not in CHANNELS:
        raise ArgumentError("channels", channels, "must be 1 (grey) or 3 (RGB)", owner=owner)
    return int(channels)


# ------------------------------------------------------------ constructors
def check_keep_range(keep_range, owner):
    """Refuses a `keep_range` other than `(keep_min, keep_max)` in (0, 1], keep_min <= keep_max.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `keep_range`.
    """
    try:
        keep_min, keep_max = keep_range
        # `ArgumentError` is a `ValueError`: its words give way to keep_range's below.
        check_keep_bounds(keep_min, keep_max, owner)
    except (TypeError, ValueError) as error:
        raise ArgumentError("keep_range", keep_range,
                            "must be (keep_min, keep_max), keep ratios in (0, 1] with "
                            "keep_min <= keep_max", owner=owner) from error


def check_mgaug_arguments(*, num_subnets, keep_range, reduction, resolutions, image_size,
                          resize_method, flatten_head, parity, strategy, width_execution,
                          owner="MGAug"):
    """The checks of `MGAug`'s constructor arguments that need no network.

    `keep_range=None` skips the keep range (a custom keep-ratio sampler).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming the argument (`num_subnets`,
            `keep_range`, `reduction`, `resolutions`, `image_size`,
            `resize_method`, `flatten_head`, `parity`, `width_execution`).
    """
    check_integer("num_subnets", num_subnets, owner)
    if reduction not in choices.MGAUG_REDUCTIONS:
        raise ArgumentError("reduction", reduction, f"must be one of {choices.MGAUG_REDUCTIONS}",
                            owner=owner)
    if keep_range is not None:
        check_keep_range(keep_range, owner)
    if resolutions and (not isinstance(resolutions, (list, tuple))
                        or not all(is_integer(size) and size >= 1 for size in resolutions)):
        raise ArgumentError("resolutions", resolutions,
                            "must be None or a sequence of positive integer sizes in pixels",
                            owner=owner)
    if image_size is not None:
        if not is_integer(image_size) or image_size < 1:
            raise ArgumentError("image_size", image_size,
                                "must be None or a positive integer size in pixels", owner=owner)
        check_resolutions(resolutions, image_size, owner)
    if resize_method not in choices.RESIZE_METHODS:
        raise ArgumentError("resize_method", resize_method,
                            f"must be one of {choices.RESIZE_METHODS}", owner=owner)
    check_flatten_head(flatten_head, owner)
    if parity and (resize_method != "align_corners" or flatten_head not in (None, "reference")):
        raise ArgumentError(
            "parity", parity,
            f"must be False with resize_method={resize_method!r} and "
            f"flatten_head={flatten_head!r}: parity=True reproduces the reference code, "
            "which needs resize_method='align_corners' and flatten_head None or "
            "'reference' (which it implies)", owner=owner)
    if width_execution not in choices.WIDTH_EXECUTIONS:
        raise ArgumentError("width_execution", width_execution,
                            f"must be one of {choices.WIDTH_EXECUTIONS}", owner=owner)
    if width_execution == "sliced" and strategy != "random_width":
        raise ArgumentError(
            "width_execution", width_execution,
            f"must be 'masked' or 'auto' with strategy {strategy!r}: "
            "width_execution='sliced' needs channel masks (strategy 'random_width'), and "
            f"{strategy!r} prunes single entries, which run masked", owner=owner)


def check_resolutions(resolutions, image_size, owner="MGAug"):
    """Refuses resolutions above `image_size`: sub-networks only downscale."""
    if resolutions and max(resolutions) > int(image_size):
        raise ArgumentError(
            "resolutions", tuple(resolutions),
            f"must be sizes of at most the input images' {image_size} px (sub-networks "
            "only downscale)", owner=owner)


def check_flatten_head(flatten_head, owner=None):
    """Refuses a `flatten_head` other than None or one of `choices.FLATTEN_HEADS`.

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `flatten_head`.
    """
    if flatten_head is not None and flatten_head not in choices.FLATTEN_HEADS:
        raise ArgumentError("flatten_head", flatten_head,
                            f"must be None or one of {choices.FLATTEN_HEADS}", owner=owner)


def check_inner_loop(inner_lr, inner_steps, eval_inner_steps, owner):
    """The inner-loop arguments of a gradient-based learner.

    Raises:
        mgaug_tf.errors.ArgumentError: `inner_steps` not an integer >= 1,
            `eval_inner_steps` not None or an integer >= 0, `inner_lr` not
            a positive number.
    """
    check_integer("inner_steps", inner_steps, owner)
    if eval_inner_steps is not None and (not is_integer(eval_inner_steps)
                                         or eval_inner_steps < 0):
        raise ArgumentError("eval_inner_steps", eval_inner_steps,
                            "must be None or an integer >= 0", owner=owner)
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, numbers.Real) or not inner_lr > 0:
        raise ArgumentError("inner_lr", inner_lr, "must be a positive number", owner=owner)


def check_optimizer_config(optimizer_config):
    """The values of an `OptimizerConfig` that `factory.build_optimizer` relies on.

    Raises:
        config.ConfigFieldError: A learning rate that is not positive, or a
            decay rate outside (0, 1] when the rate decays.
    """
    if not optimizer_config.learning_rate > 0:
        raise config_lib.ConfigFieldError(
            ("optimizer.learning_rate",), "`learning_rate` must be positive. Received: "
            f"learning_rate={optimizer_config.learning_rate!r}")
    if optimizer_config.decay_steps and not 0 < optimizer_config.decay_rate <= 1:
        raise config_lib.ConfigFieldError(
            ("optimizer.decay_rate",), "`decay_rate` must be in (0, 1] (the factor of each "
            f"decay). Received: decay_rate={optimizer_config.decay_rate!r}")


# ------------------------------------------------------------ a whole config
IMAGE_SIZE = "data.image_size"
_MGAUG_ARGUMENTS = {
    "strategy": ("strategy",), "num_subnets": ("num_subnets",),
    "keep_range": ("keep_min", "keep_max"), "reduction": ("reduction",),
    "resolutions": ("resolutions",), "parity": ("parity", "resize", "flatten_head"),
    "resize_method": ("resize",),
    "flatten_head": ("flatten_head",), "width_execution": ("width_execution",)}
# MGAug's constructor arguments -> the `ExperimentConfig` paths they are made of.
MGAUG_PATHS = {argument: tuple(f"model.mgaug.{field}" for field in fields)
               for argument, fields in _MGAUG_ARGUMENTS.items()}
MGAUG_PATHS["image_size"] = (IMAGE_SIZE,)
# The built-in gradient-based learners' names (`registry` holds their classes
# and needs TensorFlow); a learner registered under another name is checked by
# its constructor when the factory builds it.
GRADIENT_LEARNERS = ("maml", "fomaml", "anil", "metasgd")
LEARNER_ARGUMENTS = ("n_way", "inner_lr", "inner_steps", "eval_inner_steps", "bn_mode",
                     "task_reduction", "recompute")
# A learner's constructor arguments -> the `ExperimentConfig` paths they come from.
LEARNER_PATHS = {argument: (f"model.learner.{argument}",) for argument in LEARNER_ARGUMENTS}


@contextlib.contextmanager
def fields_of(argument_paths):
    """Turns an `ArgumentError` of a listed argument into a `config.ConfigFieldError`."""
    try:
        yield
    except ArgumentError as error:
        paths = argument_paths.get(error.argument)
        if paths is None:
            raise
        raise config_lib.ConfigFieldError(paths, str(error)) from error


def mgaug_arguments(mgaug_config, image_size):
    """`MGAug`'s constructor arguments (besides the seed) from an `MGAugConfig`."""
    return {"strategy": mgaug_config.strategy, "num_subnets": mgaug_config.num_subnets,
            "keep_range": (mgaug_config.keep_min, mgaug_config.keep_max),
            "reduction": mgaug_config.reduction,
            "resolutions": tuple(mgaug_config.resolutions) or None, "image_size": image_size,
            "parity": mgaug_config.parity, "resize_method": mgaug_config.resize,
            "flatten_head": (None if mgaug_config.flatten_head == config_lib.NO_FLATTEN_HEAD
                             else mgaug_config.flatten_head),
            "width_execution": mgaug_config.width_execution}


def check_config(experiment_config):
    """The constructors' checks of `experiment_config` that need no TensorFlow.

    MGAug's arguments (against `data.image_size` when it is set), the
    learner's `n_way` and inner loop, the outer optimizer's rates, and the
    data readers' `channels` (`check_channels`); names
    (backbone, learner, optimizer) and what needs a built network are
    checked when `mgaug_tf.factory` builds the objects.

    Raises:
        config.ConfigFieldError: Naming the config fields of the refused
            argument, with the constructor's words.
    """
    model = experiment_config.model
    if model.mgaug.enabled:
        with fields_of(MGAUG_PATHS):
            check_mgaug_arguments(**mgaug_arguments(model.mgaug,
                                                    experiment_config.data.image_size))
    learner = model.learner
    with fields_of(LEARNER_PATHS):
        check_n_way(learner.n_way, owner=learner.name)
        if learner.name in GRADIENT_LEARNERS:
            check_inner_loop(learner.inner_lr, learner.inner_steps, learner.eval_inner_steps,
                             owner=learner.name)
    check_optimizer_config(experiment_config.optimizer)
    if experiment_config.data.channels is not None:
        with fields_of({"channels": ("data.channels",)}):
            check_channels(experiment_config.data.channels, owner=experiment_config.data.dataset)
