"""Any Keras 3 model in the inner loop: the supported layers, float64 finite
differences of second-order meta-gradients, MGAug's invariants, and refusals."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional, inner_loop
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.errors import ArgumentError
from mgaug_tf.gradient_check import FiniteDifferences
from mgaug_tf.learners.base import cross_entropy
from tests.augment import invariants
from tests.conftest import make_episode_batch
from tests.learners.any_models import KINDS, L, classification_batch, network_of

TOLERANCE = 1e-6
# Kinds whose finite-difference check runs by default (the two); the
# other supported layers run under `slow`.
DEFAULT_FD_KINDS = ("lstm", "shared_dense")


@pytest.mark.parametrize("kind", KINDS)
def test_fast_weights_compute_the_networks_own_function(kind):
    """`stateless_call` on the variables' values gives the ordinary call's outputs,
    and a learner accepts the network and records its example shape."""
    network, shape, token_ids = network_of(kind)
    (support, _, _), _ = classification_batch(shape, token_ids)
    expected = network(support[0], training=True)
    got, _ = functional.call_with_weights(
        network, functional.read_values(network.trainable_variables),
        functional.read_values(network.non_trainable_variables), support[0], training=True)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert functional.unsupported_layers(network) == []
    learner = mg.MAML(network, 2, inner_steps=1)
    learner.build(shape)
    assert learner.example_shape == shape


def second_order_errors(kind, objective="classification"):
    """Relative errors of the MAML meta-gradient against float64 central differences."""
    regression = objective == "regression"
    network, shape, token_ids = network_of(kind, n_outputs=1 if regression else 2,
                                           dtype="float64")
    learner = mg.MAML(network, None if regression else 2, inner_lr=0.1, inner_steps=2,
                      objective=objective)
    batch = classification_batch(shape, token_ids, tasks=2, dtype="float64")
    if regression:
        rng = np.random.default_rng(5)
        (support, _, query), _ = batch
        batch = ((support, rng.normal(size=support.shape[:2] + (1,)), query),
                 rng.normal(size=query.shape[:2] + (1,)))
    learner.build(shape)
    _, gradients = tf.function(learner.compute_meta_gradients)(batch)
    assert all(g.dtype == tf.float64 for g in gradients)
    differences = FiniteDifferences(learner, batch)
    errors = [differences.directional(gradients, seed)[2] for seed in range(2)]
    # One coordinate of the first kernel (an LSTM's input kernel, the shared Dense's).
    errors.append(differences.coordinate(gradients, 0, 1)[2])
    return errors


@pytest.mark.parametrize("kind", [
    kind if kind in DEFAULT_FD_KINDS else pytest.param(kind, marks=pytest.mark.slow)
    for kind in KINDS])
def test_second_order_maml_meta_gradient_matches_finite_differences(kind):
    """2 tasks, 2 inner steps, float64: the meta-gradient differentiates through
    the inner loop's gradients (an LSTM's while loop; a Dense layer used twice)."""
    errors = second_order_errors(kind)
    assert max(errors) < TOLERANCE, errors


def test_maml_regression_meta_gradient_matches_finite_differences():
    errors = second_order_errors("dense", objective="regression")
    assert max(errors) < TOLERANCE, errors


def mgaug_learner(kind, augmentation, dtype="float32"):
    network, shape, token_ids = network_of(kind, dtype=dtype)
    learner = mg.MAML(network, 2, inner_lr=0.1, inner_steps=2, augmentation=augmentation)
    learner.build(shape)
    return learner, classification_batch(shape, token_ids, tasks=2, dtype=dtype)


MGAUG_KINDS = ["shared_dense", pytest.param("lstm", marks=pytest.mark.slow),
               pytest.param("attention", marks=pytest.mark.slow),
               pytest.param("embedding", marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind", MGAUG_KINDS)
@pytest.mark.parametrize("strategy", ["random_param", "catfish"])
def test_mgaug_keep_ratio_one_equals_the_plain_step(kind, strategy):
    """Keep ratio 1.0: every sub-network is the full network, so K = 2 sub-networks
    give 3 times the plain meta-gradient (float64)."""
    plain, batch = mgaug_learner(kind, None, dtype="float64")
    augmented, _ = mgaug_learner(kind, mg.MGAug(strategy, num_subnets=2, keep_range=(1.0, 1.0),
                                                include_dense=True), dtype="float64")
    invariants.copy_weights(plain, augmented)
    _, plain_gradients = plain.compute_meta_gradients(batch)
    _, augmented_gradients = augmented.compute_meta_gradients(batch)
    for got, want in zip(augmented_gradients, plain_gradients):
        np.testing.assert_allclose(got, 3.0 * np.asarray(want), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", MGAUG_KINDS)
@pytest.mark.parametrize("strategy", ["random_param", "catfish"])
def test_mgaug_pruned_entries_get_zero_update_and_zero_gradient(kind, strategy):
    learner, batch = mgaug_learner(kind, mg.MGAug(strategy, keep_range=(0.6, 0.6),
                                                  include_dense=True))
    task = learner._split_tasks(batch)[0]
    masked = invariants.assert_pruned_entries_stay_frozen(learner, task, inner_steps=2)
    expected = [variable for variable, prunable in zip(
        learner.network.trainable_variables,
        masks_lib.prunable_weights(learner.network, include_dense=True)) if prunable]
    assert [v.path for v in masked] == [v.path for v in expected] and masked


def test_prunable_weights_cover_every_kernel_with_include_dense():
    """Default: convolution kernels of any rank; include_dense: every other kernel
    (Dense, LSTM kernel and recurrent kernel, attention, embeddings), never biases."""
    def prunable_paths(kind, include_dense):
        network, _, _ = network_of(kind)
        return sorted(v.path.split("/", 1)[-1] for v, p in zip(
            network.trainable_variables,
            masks_lib.prunable_weights(network, include_dense)) if p)

    assert prunable_paths("conv1d", False) == ["kernel"]  # the Conv1D's
    assert len(prunable_paths("conv1d", True)) == 2
    assert prunable_paths("lstm", False) == []
    assert prunable_paths("lstm", True) == ["kernel", "lstm_cell/kernel",
                                            "lstm_cell/recurrent_kernel"]
    assert prunable_paths("embedding", True) == ["embeddings", "kernel"]
    # Query, key, value and output projections, and the Dense head: no bias, no LayerNorm.
    assert len(prunable_paths("attention", True)) == 5


# ------------------------------------------------------------------ refusals
def test_keras_batch_normalization_is_refused_naming_the_layer():
    network = keras.Sequential([keras.Input((4,)), L.Dense(3),
                                L.BatchNormalization(name="stock_bn"), L.Dense(2)])
    with pytest.raises(ArgumentError, match=r"MAML: `network` .* layer stock_bn "
                                            r"\(BatchNormalization\) cannot: .*second-order.*"
                                            r"mgaug_tf.MetaBatchNormalization"):
        mg.MAML(network, 2)


def test_keras_conv2d_with_a_bias_is_refused_when_differentiated_twice_outside_float64():
    """oneDNN can fuse its bias gradient into a cycle (tests/backbones/test_convolution.py)."""
    def network(convolution, dtype="float32"):
        return keras.Sequential([keras.Input((6, 6, 1)), convolution, L.Flatten(),
                                 L.Dense(2, dtype=dtype)])

    for learner_class in (mg.MAML, mg.MetaSGD):
        with pytest.raises(ArgumentError, match=r"layer stock_conv \(Conv2D\) cannot: .*"
                                                r"nodes in a cycle.*mgaug_tf.backbones.Conv2D"):
            learner_class(network(L.Conv2D(3, 3, name="stock_conv")), 2)
    assert mg.FOMAML(network(L.Conv2D(3, 3)), 2).first_order
    # Its separable convolution has the same bias gradient (Meta-SGD failed
    # three of four builds with it); no layer of ours replaces it.
    with pytest.raises(ArgumentError, match=r"layer separable \(SeparableConv2D\) cannot: .*"
                                            r"nodes in a cycle.*use_bias=False"):
        mg.MAML(network(L.SeparableConv2D(3, 3, name="separable")), 2)
    mg.MAML(network(L.SeparableConv2D(3, 3, use_bias=False)), 2)
    # ANIL's inner loop adapts the last layer only: no gradient of the
    # convolution is differentiated again.
    mg.ANIL(network(L.Conv2D(3, 3)), 2)
    mg.MAML(network(L.Conv2D(3, 3, use_bias=False)), 2)
    mg.MAML(network(mg.backbones.Conv2D(3, 3)), 2)
    mg.MAML(network(L.Conv2D(3, 3, dtype="float64"), "float64"), 2)  # oneDNN skips float64


@pytest.mark.parametrize("layer", [L.LayerNormalization(name="stock_norm"),
                                   L.GroupNormalization(groups=1, name="stock_norm")])
def test_keras_layer_and_group_normalization_are_refused_for_second_order(layer):
    """Their variance is taken around stop_gradient(mean), like Keras's batch norm:
    right first derivatives, wrong second ones."""
    def network():
        return keras.Sequential([keras.Input((4,)), L.Dense(3), layer, L.Dense(2)])

    with pytest.raises(ArgumentError, match=r"layer stock_norm \(\w+Normalization\) cannot: "
                                            r".*stop_gradient\(mean\).*MetaLayerNormalization"):
        mg.MAML(network(), 2)
    assert mg.FOMAML(network(), 2).first_order  # first derivatives are right


def test_meta_layer_normalization_is_keras_forward_with_exact_hessian(tmp_path):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 4, 2)))
    ours = mg.MetaLayerNormalization(axis=[1, 2], dtype="float64")
    stock = L.LayerNormalization(axis=[1, 2], dtype="float64")
    ours.build(x.shape)
    stock.build(x.shape)
    for mine, theirs in zip(ours.weights, stock.weights):
        mine.assign(rng.normal(size=mine.shape))
        theirs.assign(mine)
    np.testing.assert_array_equal(ours(x), stock(x))
    direction = tf.constant(rng.normal(size=x.shape))

    def gradient(inputs, layer):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.sin(layer(inputs)))
        return tape.gradient(loss, inputs)

    def hessian_product(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            product = tf.reduce_sum(gradient(x, layer) * direction)
        return tape.gradient(product, x)

    numeric = (gradient(x + 1e-6 * direction, ours)
               - gradient(x - 1e-6 * direction, ours)) / 2e-6
    assert float(tf.norm(hessian_product(ours) - numeric) / tf.norm(numeric)) < 1e-6
    # Keras's own is off by far more than rounding: the reason for this layer.
    assert float(tf.norm(hessian_product(stock) - numeric) / tf.norm(numeric)) > 1e-2
    model = keras.Sequential([keras.Input((4, 2), dtype="float64"), ours])
    model.save(str(tmp_path / "norm.keras"))
    loaded = mg.load_model(str(tmp_path / "norm.keras"))
    assert type(loaded.layers[0]) is mg.MetaLayerNormalization
    np.testing.assert_array_equal(loaded(x), ours(x))


@pytest.mark.parametrize("layer, reason", [
    (L.LSTM(3, stateful=True, name="stateful_lstm"), r"stateful_lstm \(LSTM\) cannot: a "
                                                     r"stateful RNN.*stateful=False"),
    (L.LSTM(3, use_cudnn=True, name="cudnn_lstm"), r"cudnn_lstm \(LSTM\) cannot: the cuDNN "
                                                   r"kernel.*use_cudnn=False"),
    (L.GRU(3, dropout=0.2, name="dropping_gru"), r"dropping_gru \(GRU\) cannot: its dropout"),
])
def test_unsupported_recurrent_layers_are_refused_naming_the_layer(layer, reason):
    network = keras.Sequential([keras.Input((4, 2), batch_size=4), layer, L.Dense(2)])
    with pytest.raises(ArgumentError, match=reason):
        mg.MAML(network, 2)


def test_dropout_is_refused_but_a_zero_rate_is_not():
    with pytest.raises(ArgumentError, match=r"drop \(Dropout\) cannot: it is random in training"):
        mg.MAML(keras.Sequential([keras.Input((4,)), L.Dropout(0.5, name="drop"), L.Dense(2)]), 2)
    mg.MAML(keras.Sequential([keras.Input((4,)), L.Dropout(0.0), L.Dense(2)]), 2)


def test_first_order_learners_accept_cudnn_recurrent_layers():
    """Only second derivatives are missing from cuDNN kernels."""
    network = keras.Sequential([keras.Input((4, 2)), L.LSTM(3, use_cudnn=True), L.Dense(2)])
    assert mg.FOMAML(network, 2).first_order


def test_untracked_tensorflow_state_is_refused():
    class RawVariable(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = tf.Variable(tf.ones([input_shape[-1]]))

        def call(self, inputs):
            return inputs * self.scale

    network = keras.Sequential([keras.Input((3,)), RawVariable(name="raw"), L.Dense(2)])
    with pytest.raises(ArgumentError, match=r"raw \(RawVariable\) cannot: it holds TensorFlow "
                                            r"state that is not a Keras 3 variable"):
        mg.MAML(network, 2)


def test_a_network_that_is_not_a_keras_3_layer_is_refused():
    class Plain(tf.Module):
        def __call__(self, inputs):
            return inputs

    with pytest.raises(ArgumentError, match=r"MAML: `network` .* Plain is not a Keras 3 layer"):
        mg.MAML(Plain(name="plain"), 2)


def test_tfsm_layer_is_refused(tmp_path):
    inner = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    inner.export(str(tmp_path / "saved"), verbose=False)
    network = keras.Sequential([keras.Input((3,)),
                                keras.layers.TFSMLayer(str(tmp_path / "saved"),
                                                       call_endpoint="serve", name="tfsm")])
    with pytest.raises(ArgumentError, match=r"tfsm \(TFSMLayer\) cannot: a TFSMLayer"):
        mg.MAML(network, 2)


def test_random_width_refuses_a_recurrent_kernel_naming_the_layer():
    network, _, _ = network_of("lstm")
    with pytest.raises(ArgumentError, match=r"MGAug: `strategy` cannot prune layer 'lstm' "
                                            r"\(LSTM\): random_width removes output units of "
                                            r"Dense and convolution kernels only"):
        mg.MAML(network, 2, augmentation=mg.MGAug("random_width", include_dense=True))
    # Without include_dense the LSTM is not pruned, and nothing else is either.
    with pytest.raises(ArgumentError, match=r"`include_dense` must be True for network .*no "
                                            r"convolution kernel to prune"):
        mg.MAML(network, 2, augmentation=mg.MGAug("random_width"))


def test_random_width_prunes_dense_and_convolution_units():
    learner, batch = mgaug_learner("conv1d", mg.MGAug("random_width", keep_range=(0.5, 0.5),
                                                      include_dense=True))
    masks = learner.augmentation.draw_subnetworks(learner, tf.constant([1, 2], tf.int64)).masks[0]
    kept = [np.asarray(mask).reshape(-1) for mask in masks if mask is not None]
    assert [m.tolist() for m in kept] == [[1, 1, 0], [1, 0]]  # round(0.5 * 3) = 2, 1 of 2
    loss, _ = learner.compute_meta_gradients(batch)
    assert np.isfinite(float(loss))


def test_anil_adapts_the_last_layer_of_a_functional_model():
    """The other weights stay at theta in the inner loop; the query loss equals a
    hand-written inner loop on the last layer's weights."""
    network, shape, _ = network_of("shared_dense", dtype="float64")
    learner = mg.ANIL(network, 2, inner_lr=0.1, inner_steps=2)
    learner.build(shape)
    batch = classification_batch(shape, tasks=1, dtype="float64")
    task = learner._split_tasks(batch)[0]
    head = network.layers[-1]
    theta = functional.read_values(network.trainable_variables)
    split = len(theta) - len(head.trainable_variables)
    fixed = theta[:split]
    assert [v.path for v in network.trainable_variables[split:]] == \
        [v.path for v in head.trainable_variables]

    def support_loss(head_values):
        logits, _ = functional.call_with_weights(network, fixed + head_values, [],
                                                 task.support_images)
        return cross_entropy(task.support_labels, logits)

    adapted = inner_loop.adapt(support_loss, theta[split:], 0.1, 2)
    logits, _ = functional.call_with_weights(network, fixed + adapted, [], task.query_images)
    expected = cross_entropy(task.query_labels, logits)
    outcome = learner.task_outcome(task)
    assert float(outcome.query_loss) == pytest.approx(float(expected), rel=1e-12)


def test_anil_refuses_a_subclassed_network_without_a_head():
    with pytest.raises(ArgumentError, match=r"ANIL: `network` must be a FewShotClassifier .*"
                                            r"subclassed Conv4 does not say which layer"):
        mg.ANIL(mg.Conv4(), 3)


def test_example_shape_is_read_from_build_arguments():
    network, _, _ = network_of("lstm")
    learner = mg.MAML(network, 2)
    learner.build((None, 4, 2))
    assert learner.example_shape == (4, 2)
    with pytest.raises(ArgumentError, match=r"`input_shape` must give the shape of one example "
                                            r"with known sizes"):
        mg.MAML(network_of("lstm")[0], 2).build((4, None))


def test_meta_sgd_learning_rates_take_the_dtype_of_each_weight():
    """Layers computing in float64 under the default float32 policy get float64 rates."""
    network = keras.Sequential([keras.Input((16, 16, 1), dtype="float64"),
                                L.Flatten(dtype="float64"), L.Dense(3, dtype="float64")])
    learner = mg.MetaSGD(network, 3, inner_lr=0.1, inner_steps=1)
    learner.compile(keras.optimizers.Adam(1e-3))
    batch = make_episode_batch(0, dtype="float64")
    history = learner.fit(tf.data.Dataset.from_tensors(batch), epochs=1, steps_per_epoch=1,
                          verbose=0).history
    assert [rate.dtype for rate in learner.inner_learning_rate_variables] == ["float64"] * 2
    assert np.isfinite(history["loss"][-1])
