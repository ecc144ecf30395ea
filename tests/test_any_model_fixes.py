"""Any Keras model, continued: subclassed models and MGAug resolutions on
examples that are not images."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from mgaug_tf.errors import ArgumentError
from tests.learners.any_models import L, classification_batch, dtype_policy


# ------------------------------------------------------- subclassed models
class Subclassed(keras.Model):
    """A subclassed model whose `call` takes no `training` (Keras allows it)."""

    def __init__(self, n_way=3, **kwargs):
        super().__init__(**kwargs)
        self.flatten = L.Flatten()
        self.hidden = L.Dense(8)
        self.norm = mg.MetaBatchNormalization()
        self.head = L.Dense(n_way)

    def call(self, inputs):
        return self.head(tf.nn.relu(self.norm(self.hidden(self.flatten(inputs)))))


def sequential_twin(example_shape):
    """The same function as `Subclassed` as a Sequential (its trusted twin)."""
    return keras.Sequential([keras.Input(example_shape), L.Flatten(), L.Dense(8),
                             mg.MetaBatchNormalization(), L.ReLU(), L.Dense(3)])


def test_a_subclassed_model_trains_and_equals_its_sequential_twin():
    """A subclassed model builds (it has no `compute_output_shape`), and its `call`,
    which takes no `training`, still gets training=True (its batch norm then
    normalises with batch statistics)."""
    shape = (6, 2)
    keras.utils.set_random_seed(0)
    network = Subclassed()
    learner = mg.MAML(network, 3, inner_lr=0.1, inner_steps=1)
    learner.build(example_shape=shape)
    assert learner.example_shape == shape and len(network.trainable_variables) == 6
    twin = sequential_twin(shape)
    assert [v.shape for v in twin.trainable_variables] == \
        [v.shape for v in network.trainable_variables]
    rng = np.random.default_rng(1)
    for mine, theirs in zip(network.weights, twin.weights):
        theirs.assign(rng.normal(size=theirs.shape) if theirs.trainable else mine)
        mine.assign(theirs)
    batch = classification_batch(shape, tasks=2, n_way=3)
    examples = tf.constant(batch[0][0][0])
    got, _ = functional.call_with_weights(
        network, functional.read_values(network.trainable_variables),
        functional.read_values(network.non_trainable_variables), examples, training=True)
    np.testing.assert_allclose(got, network(examples, training=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, twin(examples, training=True), rtol=1e-6, atol=1e-6)
    # Batch statistics, not the moving ones: training reached the batch norm.
    assert np.max(np.abs(got - network(examples, training=False))) > 1e-2

    before = [np.array(v) for v in network.trainable_variables]
    twin_learner = mg.MAML(twin, 3, inner_lr=0.1, inner_steps=1)
    twin_learner.build(example_shape=shape)
    for model in (learner, twin_learner):
        model.compile(keras.optimizers.SGD(0.1))
        model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    for mine, theirs in zip(network.weights, twin.weights):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    moved = [float(np.max(np.abs(np.asarray(variable) - value)))
             for variable, value in zip(network.trainable_variables, before)]
    # Batch norm subtracts the batch mean: the bias before it gets no gradient.
    assert moved[1] < 1e-6 and min(moved[:1] + moved[2:]) > 1e-4, moved


def test_a_subclassed_model_with_the_wrong_width_is_refused_at_build():
    learner = mg.MAML(Subclassed(n_way=3), 2, inner_steps=1)
    with pytest.raises(ArgumentError, match=r"MAML: `network` must end in an n_way-wide head "
                                            r"\(n_way=2\) but gives 3 outputs"):
        learner.build(example_shape=(6, 2))


def test_an_example_shape_the_network_cannot_take_is_refused_naming_it():
    network = keras.Sequential([keras.Input((16, 2)), L.Flatten(), L.Dense(3)])
    with pytest.raises(ArgumentError, match=r"MAML: `example_shape` must be a shape of one "
                                            r"example that network .* takes") as error:
        mg.MAML(network, 3).build(example_shape=(12, 4))
    assert error.value.value == (12, 4)


# ------------------------------------------- MGAug resolutions, not images
def sequence_network():
    return keras.Sequential([keras.Input((16, 2)), L.Conv1D(4, 3), L.Flatten(), L.Dense(3)])


class SubclassedSequenceNetwork(keras.Model):
    """A Conv1D network that declares no input shape (known only at build)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv1D(4, 3)
        self.flatten = L.Flatten()

    def call(self, inputs):
        return self.flatten(self.conv(inputs))


NOT_IMAGES = (r"MGAug: `resolutions` must be None for network '\w+', whose examples have "
              r"shape \(16, 2\): resolutions resize images \(H, W, C\), and these examples "
              r"are not images")


@pytest.mark.parametrize("flatten_head", [None, "reference"])
@pytest.mark.parametrize("learner_class", [mg.MAML, mg.ProtoNet])
def test_resolutions_on_sequences_are_refused_once_at_construction(learner_class,
                                                                   flatten_head):
    """Not a flatten-head message first and a FewShotClassifier one after."""
    augmentation = mg.MGAug("random_param", resolutions=(8,), flatten_head=flatten_head)
    with pytest.raises(ArgumentError, match=NOT_IMAGES) as error:
        learner_class(sequence_network(), 3, augmentation=augmentation)
    assert error.value.argument == "resolutions"


def test_resolutions_on_sequences_of_undeclared_shape_are_refused_by_argument_resolutions():
    augmentation = mg.MGAug("random_param", resolutions=(8,), flatten_head="reference")
    # ProtoNet learns the example shape at build, and refuses there.
    learner = mg.ProtoNet(SubclassedSequenceNetwork(), 3, augmentation=augmentation)
    with pytest.raises(ArgumentError, match=NOT_IMAGES):
        learner.build(example_shape=(16, 2))
    # A MAML-family learner needs a FewShotClassifier for resolutions: refused at once.
    with pytest.raises(ArgumentError, match=r"MGAug: `resolutions` must be None for network "
                                            r"'\w+' \(SubclassedSequenceNetwork\) with MAML: "
                                            r"resolutions resize images \(H, W, C\), and a "
                                            r"MAML-family learner needs a FewShotClassifier"):
        mg.MAML(SubclassedSequenceNetwork(), 3, augmentation=augmentation)
