"""Any Keras model, continued: subclassed models, MGAug resolutions on examples
that are not images, Keras batch norm in first-order learners, and the dropout
refusal's wording."""

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


# ------------------------------------------ Keras batch norm, first order
def batch_norm_network(norm_class, **arguments):
    with dtype_policy("float64"):
        return keras.Sequential([keras.Input((5,), dtype="float64"), L.Dense(4),
                                 norm_class(**arguments), L.Activation("tanh"), L.Dense(2)])


def test_first_order_learners_accept_keras_batch_normalization_with_exact_gradients():
    """FOMAML differentiates once: Keras's batch norm (variance around
    stop_gradient(mean), right first derivatives) gives the meta-gradients and
    moving statistics of MetaBatchNormalization, in float64."""
    keras.utils.set_random_seed(0)
    stock = batch_norm_network(L.BatchNormalization, momentum=0.9, epsilon=1e-5)
    ours = batch_norm_network(mg.MetaBatchNormalization, momentum=0.9, epsilon=1e-5)
    rng = np.random.default_rng(0)
    for mine, theirs in zip(ours.weights, stock.weights):
        mine.assign(rng.normal(size=mine.shape) + (1.0 if "variance" in mine.path else 0.0))
        theirs.assign(mine)
    batch = classification_batch((5,), tasks=2, dtype="float64")
    outcomes = []
    for network in (stock, ours):
        learner = mg.FOMAML(network, 2, inner_lr=0.5, inner_steps=2)
        learner.build((5,))
        task = learner._split_tasks(batch)[0]
        outcomes.append((learner.compute_meta_gradients(batch)[1],
                         learner.task_outcome(task).new_non_trainable))
    (stock_gradients, stock_statistics), (our_gradients, our_statistics) = outcomes
    assert len(stock_gradients) == 6
    for got, want in zip(stock_gradients, our_gradients):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(stock_statistics, our_statistics):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert mg.ProtoNet(batch_norm_network(L.BatchNormalization), 2).n_way == 2
    with pytest.raises(ArgumentError, match=r"batch_norm\w* \(BatchNormalization\) cannot: "
                                            r".*second-order meta-gradients through it are "
                                            r"wrong \(first-order learners accept it\)"):
        mg.MAML(batch_norm_network(L.BatchNormalization, name="batch_norm_stock"), 2)


def test_keras_batch_normalization_second_derivative_is_wrong():
    """Why second-order learners still refuse it: float64 central differences of
    its input gradient disagree with its Hessian-vector product, and agree with
    MetaBatchNormalization's (whose forward pass it equals)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, 3)) + 2.0)  # a mean far from 0
    direction = tf.constant(rng.normal(size=(6, 3)))
    stock = L.BatchNormalization(epsilon=1e-5, dtype="float64")
    ours = mg.MetaBatchNormalization(epsilon=1e-5, dtype="float64")

    def gradient(inputs, layer):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.sin(3.0 * layer(inputs, training=True)))
        return tape.gradient(loss, inputs)

    def relative_error(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            product = tf.reduce_sum(gradient(x, layer) * direction)
        analytic = tape.gradient(product, x)
        numeric = (gradient(x + 1e-6 * direction, layer)
                   - gradient(x - 1e-6 * direction, layer)) / 2e-6
        return float(tf.norm(analytic - numeric) / tf.norm(numeric))

    np.testing.assert_allclose(stock(x, training=True), ours(x, training=True), rtol=1e-12)
    np.testing.assert_allclose(gradient(x, stock), gradient(x, ours), rtol=1e-10, atol=1e-12)
    assert relative_error(ours) < 1e-6
    assert relative_error(stock) > 1e-3


# ------------------------------------------------- dropout refusals' wording
def test_recurrent_dropout_is_named_and_counted_once():
    network = keras.Sequential([keras.Input((5, 2)), L.GRU(4, recurrent_dropout=0.2),
                                L.Dense(3)])
    with pytest.raises(ArgumentError, match=r"layer gru\w* \(GRU\) cannot: its "
                                            r"recurrent_dropout=0.2 is random in training "
                                            r"\(see Dropout\): build it with "
                                            r"recurrent_dropout=0\. Received") as error:
        mg.MAML(network, 3)
    assert "more" not in str(error.value)  # its GRUCell is the same fault
    assert len(functional.unsupported_layers(network)) == 1


def test_other_unsupported_layers_are_counted_and_named():
    inputs = keras.Input((5, 2))
    recurrent = L.GRU(4, dropout=0.1, recurrent_dropout=0.2, return_sequences=True,
                      name="gru_both")(inputs)
    attended = L.MultiHeadAttention(2, 2, dropout=0.1, name="attention")(recurrent, recurrent)
    wrapped = L.Bidirectional(L.LSTM(3, dropout=0.3), name="both_ways")(attended)
    one = keras.Model(inputs, L.Dense(3)(L.Dropout(0.5, name="drop")(wrapped)))
    problems = functional.unsupported_layers(one)
    assert [name for name, _ in problems] == [
        "gru_both (GRU)", "attention (MultiHeadAttention)", "both_ways (Bidirectional)",
        "drop (Dropout)"]
    assert problems[0][1].startswith("its dropout=0.1 and recurrent_dropout=0.2 are random")
    assert problems[2][1].startswith("its wrapped layer's dropout=0.3 is random")
    with pytest.raises(ArgumentError, match=r"build it with dropout=0 and recurrent_dropout=0 "
                                            r"\(and 3 more unsupported layers: attention "
                                            r"\(MultiHeadAttention\), both_ways "
                                            r"\(Bidirectional\), drop \(Dropout\)\)"):
        mg.MAML(one, 3)
    two = keras.Sequential([keras.Input((4,)), L.Dropout(0.5, name="first"),
                            L.Dropout(0.5, name="second"), L.Dense(3)])
    with pytest.raises(ArgumentError, match=r"\(and 1 more unsupported layer: second "
                                            r"\(Dropout\)\)\. Received"):
        mg.MAML(two, 3)
