"""Process-wide TensorFlow settings that the learners' graph loops need.

The library never changes these on its own (not at import, not when a
learner is built, compiled or traced): a program calls `configure_tensorflow`
once, or wraps its training in `tensorflow_options`. It only reads them
(`is_configured`): a learner's `fit` or `evaluate` warns when they are not set.
"""

import contextlib
from typing import Iterator

import tensorflow as tf
from tensorflow.python.eager import context as eager_context

# The Grappler rewrites `configure_tensorflow` turns off (False) for the process.
GRAPPLER_OPTIONS = {"arithmetic_optimization": False, "remapping": False}


def configure_tensorflow() -> None:
    """Turns off the two Grappler rewrites that break the learners' nested graph loops.

    Sets TensorFlow's graph optimizer options (`tf.config.optimizer`)
    `arithmetic_optimization` and `remapping` to False:

    * The arithmetic optimizer's AddOpsRewrite turns sums of run-time-shaped
      tensors inside the nested loops (the meta-batch's tasks x MGAug's
      sub-network passes, at drawn resolutions) into accumulators on
      temporary variables whose names collide across loop iterations, and
      TensorFlow 2.21 then fails the step with `AlreadyExistsError`
      ("... AddOpsRewrite_add_N/tmp_var/frame:...").
    * The remapper (op fusion) is kept off as a precaution: op fusion has
      produced cyclic graphs in these nested loops.

    The options are process-wide: they apply to every `tf.function` run
    afterwards, the learners' and any other model's, and stay set
    (`tensorflow_options` scopes them instead). The `mgaug-train` program
    calls this at start-up; API users should call it once before training
    learners that use MGAug or the graph task loop (every learner whose
    `unroll_loops` is False, the default). Idempotent.

    Example:
        >>> import mgaug_tf as mg
        >>> mg.configure_tensorflow()
        >>> learner.fit(episode_batches, steps_per_epoch=100)
    """
    tf.config.optimizer.set_experimental_options(dict(GRAPPLER_OPTIONS))


def is_configured() -> bool:
    """Whether the process's options are `configure_tensorflow`'s (both rewrites off).

    Reads `tf.config.optimizer.get_experimental_options()` and changes
    nothing: True when `arithmetic_optimization` and `remapping` are both
    currently False (after `configure_tensorflow`, or inside
    `tensorflow_options`), False when either is unset (TensorFlow's default:
    on) or True. `MetaLearner.fit` and `evaluate` warn when it is False.
    """
    options = tf.config.optimizer.get_experimental_options()
    return all(name in options and options[name] == value
               for name, value in GRAPPLER_OPTIONS.items())


@contextlib.contextmanager
def tensorflow_options() -> Iterator[None]:
    """`configure_tensorflow`'s settings inside a `with` block, the previous ones after it.

    Grappler reads the options when a function first runs, so run (not only
    trace) the learner's steps inside the block. Options that were unset
    before the block are unset again after it; not thread-safe (the options
    are the process's).

    Example:
        >>> with mg.runtime.tensorflow_options():
        ...     learner.fit(episode_batches, steps_per_epoch=100)
    """
    previous = tf.config.optimizer.get_experimental_options()
    configure_tensorflow()
    try:
        yield
    finally:
        _restore_options(previous)


def _restore_options(previous):
    """Puts back `previous` (from `get_experimental_options`) for the keys this module sets."""
    # `set_experimental_options` can only set keys, so a key that was unset
    # (TensorFlow's default) is removed from the context's own table.
    table = getattr(eager_context.context(), "_optimizer_experimental_options", None)
    restored = {}
    for name in GRAPPLER_OPTIONS:
        if name in previous:
            restored[name] = previous[name]
        elif table is not None:
            table.pop(name, None)
        else:
            restored[name] = True  # both rewrites are on by default
    tf.config.optimizer.set_experimental_options(restored)
