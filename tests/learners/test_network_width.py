"""Gradient learners refuse a network whose output width is not n_way; ProtoNet takes any."""

import keras
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError
from tests.conftest import make_episode_batch


def _fit_one_step(learner, size=28, n_way=5):
    learner.compile(keras.optimizers.Adam(1e-3))
    batch = make_episode_batch(0, tasks=2, n_way=n_way, k_shot=1, k_query=1, size=size)
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return learner.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)


@pytest.mark.parametrize("learner_class", [mg.MAML, mg.FOMAML, mg.ANIL, mg.MetaSGD])
@pytest.mark.parametrize("head", [7, 3])
def test_a_head_of_another_width_is_refused_at_construction(learner_class, head):
    with pytest.raises(ArgumentError, match="n_way-wide head") as error:
        learner_class(mg.FewShotClassifier(mg.Conv4(filters=8), head), n_way=5)
    assert error.value.argument == "network"
    assert "FewShotClassifier(backbone, 5)" in str(error.value)


def test_a_network_without_head_is_refused_when_fit_builds_it():
    # Conv4(8) at 28 px gives 8 features, not 5 logits.
    learner = mg.MAML(mg.Conv4(filters=8), n_way=5, inner_steps=1)
    with pytest.raises(ArgumentError, match="gives 8 outputs per example") as error:
        _fit_one_step(learner)
    assert error.value.argument == "network"
    with pytest.raises(ArgumentError) as error:
        mg.MAML(mg.Conv4(filters=8), n_way=5).build((28, 28, 1))
    assert error.value.argument == "network"


def test_a_network_whose_outputs_are_n_way_wide_builds():
    learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=8), 5), n_way=5, inner_steps=1)
    learner.build((28, 28, 1))
    assert learner.built
    anil = mg.ANIL(mg.FewShotClassifier(mg.Conv4(filters=4), 3), n_way=3, inner_steps=1)
    assert len(_fit_one_step(anil, size=16, n_way=3).history["loss"]) == 1
    # A network without an `n_way` attribute is checked by its output shape.
    plain = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    mg.MAML(plain, n_way=3).build((16, 16, 1))


def test_protonet_takes_any_feature_width():
    learner = mg.ProtoNet(mg.Conv4(filters=8), n_way=5)
    learner.build((28, 28, 1))
    assert learner.built
