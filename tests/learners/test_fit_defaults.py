"""`fit`'s shuffle default for datasets and `summary`'s layer listing."""

import io
import re
import warnings
from contextlib import redirect_stdout

import keras
import pytest
import tensorflow as tf

import mgaug_tf as mg
from tests.conftest import make_episode_batch

SHUFFLE_WARNING = "`shuffle=True` was passed, but will be ignored"


def protonet():
    learner = mg.ProtoNet(mg.Conv4(filters=2), 3)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    return learner


def dataset():
    batch = make_episode_batch(0, tasks=1, n_way=3, k_shot=1, k_query=1, size=16)
    return tf.data.Dataset.from_tensors(batch)


def shuffle_warnings(**fit_arguments):
    learner = protonet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner.fit(dataset(), epochs=1, verbose=0, **fit_arguments)
    return [w for w in caught if SHUFFLE_WARNING in str(w.message)]


def test_fit_on_a_dataset_does_not_ask_keras_to_shuffle_it():
    assert shuffle_warnings() == []


def test_an_explicit_shuffle_reaches_keras():
    # The caller's own setting is passed through, so Keras's warning comes back.
    assert len(shuffle_warnings(shuffle=True)) == 1


def test_fit_on_arrays_keeps_keras_shuffle_default(monkeypatch):
    seen = {}

    def record(self, x=None, *args, **kwargs):
        seen.update(kwargs)
        return None

    monkeypatch.setattr(keras.Model, "fit", record)
    learner = protonet()
    inputs, labels = make_episode_batch(0, tasks=2, n_way=3, k_shot=1, k_query=1, size=16)
    learner.fit(inputs, labels)
    assert "shuffle" not in seen
    learner.fit(dataset())
    assert seen["shuffle"] is False


@pytest.mark.parametrize("kind", ["maml", "protonet"])
def test_summary_lists_the_backbone_layers_with_output_shapes(kind):
    backbone = mg.Conv4(filters=4)
    learner = (mg.ProtoNet(backbone, 5) if kind == "protonet"
               else mg.MAML(mg.FewShotClassifier(backbone, 5), 5))
    learner.build((28, 28, 1))
    text = io.StringIO()
    with redirect_stdout(text):
        learner.summary()
    printed = text.getvalue()
    assert "?" not in printed
    for index, size in enumerate((28, 14, 7, 3)):
        assert re.search(rf"conv{index} \(Conv2D\)\s+│ \(None, {size}, {size}, 4\)", printed)
    assert re.search(r"conv4(_\d+)? \(Conv4\)\s+│ \(None, 4\)", printed)
    if kind == "maml":
        assert re.search(r"few_shot_classifier(_\d+)?\s+│ \(None, 5\)", printed)
        assert re.search(r"head \(Dense\)\s+│ \(None, 5\)", printed)
