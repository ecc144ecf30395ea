"""Small Keras 3 networks of standard layers for the any-model tests, and a float64 scope."""

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy(name):
    """Keras's global dtype policy set to `name` inside the block (restored after).

    Keras models built from layers (Sequential, functional) compute in the
    global policy's dtype; float64 finite differences need it float64.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
