"""Small Keras 3 networks of standard layers for the any-model tests, and a float64 scope."""

import contextlib

import keras
import numpy as np

import mgaug_tf as mg


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


L = keras.layers


def network_of(kind, n_outputs=2, seed=0, dtype="float32"):
    """`(network, example_shape, token_ids)`: a small model of layer `kind`.

    Kinds: the supported layers of docs/models.md. The inputs are float
    arrays of `example_shape` (`token_ids`: integer-valued floats in [0, 7),
    for Embedding).
    """
    keras.utils.set_random_seed(seed)
    with dtype_policy(dtype):
        if kind == "dense":
            shape = (6,)
            inputs = keras.Input(shape, dtype=dtype)
            outputs = L.Dense(n_outputs)(L.Dense(4, activation="tanh")(inputs))
        elif kind == "conv1d":
            shape = (8, 2)
            inputs = keras.Input(shape, dtype=dtype)
            hidden = L.Conv1D(3, 3, activation="tanh")(inputs)
            outputs = L.Dense(n_outputs)(L.Flatten()(hidden))
        elif kind == "conv2d":
            shape = (5, 5, 1)
            inputs = keras.Input(shape, dtype=dtype)
            # Keras's Conv2D with its bias is refused for second-order learners
            # outside float64; this subclass of it is the supported form.
            hidden = mg.backbones.Conv2D(3, 3, activation="tanh")(inputs)
            outputs = L.Dense(n_outputs)(L.Flatten()(hidden))
        elif kind in ("lstm", "gru"):
            shape = (4, 2)
            inputs = keras.Input(shape, dtype=dtype)
            recurrent = L.LSTM(3, name="lstm") if kind == "lstm" else L.GRU(3, name="gru")
            outputs = L.Dense(n_outputs)(recurrent(inputs))
        elif kind == "embedding":
            shape = (4,)
            inputs = keras.Input(shape, dtype=dtype)
            outputs = L.Dense(n_outputs)(L.Flatten()(L.Embedding(7, 3, name="embedding")(inputs)))
        elif kind == "attention":  # MultiHeadAttention and (Meta)LayerNormalization
            shape = (4, 3)
            inputs = keras.Input(shape, dtype=dtype)
            attended = L.MultiHeadAttention(num_heads=2, key_dim=2, name="attention")(
                inputs, inputs)
            hidden = mg.MetaLayerNormalization()(L.Add()([attended, inputs]))
            outputs = L.Dense(n_outputs)(L.Flatten()(hidden))
        elif kind == "shared_dense":  # one Dense layer applied twice
            shape = (3,)
            inputs = keras.Input(shape, dtype=dtype)
            shared = L.Dense(3, activation="tanh", name="shared")
            outputs = L.Dense(n_outputs)(shared(shared(inputs)))
        else:
            raise ValueError(kind)
        return keras.Model(inputs, outputs), shape, kind == "embedding"


KINDS = ("dense", "conv1d", "conv2d", "lstm", "gru", "embedding", "attention", "shared_dense")


def classification_batch(example_shape, token_ids=False, seed=0, tasks=1, n_way=2, k_shot=2,
                         k_query=2, dtype="float32"):
    """A random episode batch of examples of `example_shape` (labels shuffled per task)."""
    rng = np.random.default_rng(seed)

    def labels(count):
        return np.stack([rng.permutation(np.repeat(np.arange(n_way), count))
                         for _ in range(tasks)]).astype("int32")

    def examples(count):
        shape = (tasks, n_way * count) + tuple(example_shape)
        values = rng.integers(0, 7, size=shape) if token_ids else rng.normal(size=shape)
        return values.astype(dtype)

    return ((examples(k_shot), labels(k_shot), examples(k_query)), labels(k_query))
