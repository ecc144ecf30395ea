"""`.keras` files and SavedModel exports of learners over any Keras model, and of regression."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import export
from tests.learners.any_models import classification_batch, network_of


def lstm_learner():
    network, shape, _ = network_of("lstm", n_outputs=2)
    learner = mg.MAML(network, 2, inner_lr=0.1, inner_steps=1, eval_inner_steps=2)
    learner.build(shape)
    # Move theta off its initialisation so that a reload of fresh weights would show.
    for variable in learner.network.trainable_variables:
        variable.assign(variable * 1.5 + 0.01)
    return learner, shape


def test_lstm_learner_keras_file_round_trip_gives_identical_predictions(tmp_path):
    learner, shape = lstm_learner()
    (support, labels, query), _ = classification_batch(shape, seed=3)
    path = str(tmp_path / "lstm.keras")
    learner.save(path)
    loaded = mg.load_model(path)
    assert (type(loaded.network.layers[1]).__name__, loaded.example_shape) == ("LSTM", shape)
    np.testing.assert_array_equal(loaded.adapt_and_predict(support[0], labels[0], query[0]),
                                  learner.adapt_and_predict(support[0], labels[0], query[0]))


def test_lstm_learner_export_gives_identical_predictions(tmp_path):
    learner, shape = lstm_learner()
    (support, labels, query), _ = classification_batch(shape, seed=4)
    export_dir = str(tmp_path / "export")
    export.export_saved_model(learner, export_dir)
    restored = tf.saved_model.load(export_dir)
    assert sorted(restored.signatures) == [export.PREPROCESSED_KEY, "serving_default"]
    outputs = restored.signatures["serving_default"](
        support_images=tf.constant(support[0]), support_labels=tf.constant(labels[0]),
        query_images=tf.constant(query[0]))
    expected = learner.adapt_and_predict(support[0], labels[0], query[0])
    np.testing.assert_array_equal(outputs["logits"], expected)  # the same ops, bit for bit
    np.testing.assert_array_equal(outputs["predictions"], np.argmax(expected, axis=-1))
    with open(os.path.join(export_dir, export.METADATA_FILE)) as file:
        metadata = json.load(file)
    assert (metadata["example_shape"], metadata["objective"], metadata["n_way"],
            metadata["preprocessing"]) == ([4, 2], "classification", 2, None)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"query_images must have shape "
                                                            r"\[M, 4, 2\]"):
        restored.signatures["serving_default"](
            support_images=tf.constant(support[0]), support_labels=tf.constant(labels[0]),
            query_images=tf.constant(query[0][:, :3]))


def test_regression_export_returns_the_learners_predictions(tmp_path):
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation="relu"),
                                keras.layers.Dense(1)])
    learner = mg.MAML(network, None, objective="regression", inner_steps=1,
                      eval_inner_steps=3)
    learner.build((1,))
    rng = np.random.default_rng(0)
    support_x, support_y = rng.uniform(-5, 5, (5, 1)), rng.normal(size=(5, 1))
    query_x = rng.uniform(-5, 5, (7, 1))
    export_dir = str(tmp_path / "export")
    export.export_saved_model(learner, export_dir)
    restored = tf.saved_model.load(export_dir)
    outputs = restored.signatures["serving_default"](
        support_images=tf.constant(support_x, tf.float32),
        support_labels=tf.constant(support_y, tf.float32),
        query_images=tf.constant(query_x, tf.float32))
    assert sorted(outputs) == ["predictions"]
    np.testing.assert_allclose(outputs["predictions"], learner.adapt_and_predict(
        support_x.astype("float32"), support_y.astype("float32"), query_x.astype("float32")),
        rtol=1e-6, atol=1e-7)


def test_export_without_preprocessing_needs_a_built_learner(tmp_path):
    network, _, _ = network_of("dense")
    with pytest.raises(ValueError, match=r"needs a built learner"):
        export.export_saved_model(mg.MAML(network, 2), str(tmp_path / "export"))
