"""Loading `.keras` files that hold this package's learners and networks."""

from typing import Any

import keras


def load_model(filepath: str, custom_objects: dict[str, Any] | None = None,
               compile: bool = True, safe_mode: bool = True) -> keras.Model:
    """Loads a learner or network saved with `model.save("....keras")`.

    `keras.saving.load_model` finds a custom class only once it is registered,
    and `import mgaug_tf` registers nothing until a name is used; this function
    registers every class of the package (through `mgaug_tf.factory`, which
    imports the registry's backbones and learners) and then calls it.

    Args:
        filepath: path of a `.keras` file (str or path-like).
        custom_objects: more classes or functions the file names (your own
            backbones registered elsewhere need nothing here).
        compile: whether to restore the optimizer and compile the model.
        safe_mode: Keras's guard against loading lambdas; keep True for files
            from others.

    Returns:
        The `keras.Model` the file holds (a `MetaLearner` for a saved learner).

    Raises:
        ValueError, TypeError: from Keras, for a file that is not a `.keras`
            archive or that names a class nobody registered.
    """
    import mgaug_tf.factory  # noqa: F401  (registers every class a file may name)

    return keras.saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                                   safe_mode=safe_mode)
