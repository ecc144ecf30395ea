"""Sliced width execution: random_width sub-networks on their kept channels.

The sliced pass must compute the masked pass's function (float64, tiny
Conv-4s with random biases, batch-norm offsets and statistics, so that the
removed channels' constants matter), cost about r^2 of the convolution FLOPs,
and keep one trace of the meta-step whatever the draws.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.augment import strategies
from tests.conftest import make_episode_batch

KINDS = ["maml", "fomaml", "anil", "metasgd", "protonet"]


def randomize(model, seed):
    """Random weights and statistics: biases and betas of both signs, variances > 0."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if variable.dtype not in ("float32", "float64"):
            continue
        values = rng.normal(size=variable.shape) * 0.5
        if "variance" in variable.path:
            values = 0.5 + np.abs(values)
        elif "gamma" in variable.path:
            values = 1.0 + 0.2 * values
        elif "inner_lr" in variable.path:  # Meta-SGD's rates stay at inner_lr
            continue
        variable.assign(values)


def make_network(pooling="flatten", filters=8):
    network = mg.FewShotClassifier(mg.Conv4(filters=filters, pooling=pooling, dtype="float64"),
                                   3, dtype="float64")
    network.build((None, 32, 32, 1))
    randomize(network, 1)
    return network


def channel_masks(network, keep_ratio):
    weights = functional.read_values(network.trainable_variables)
    return strategies.random_width(weights, masks_lib.prunable_weights(network),
                                   tf.constant(keep_ratio, tf.float64))


@pytest.mark.parametrize("pooling", ["flatten", "avg"])
@pytest.mark.parametrize("training", [True, False])
def test_sliced_call_equals_the_masked_call_with_its_gradients(pooling, training):
    network = make_network(pooling)
    weights = functional.read_values(network.trainable_variables)
    statistics = functional.read_values(network.non_trainable_variables)
    masks = channel_masks(network, 0.6)  # 5 of 8 channels kept per layer
    images = tf.constant(np.random.default_rng(2).normal(size=(5, 32, 32, 1)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(weights)
        masked, masked_statistics = functional.call_with_weights(
            network, weights, statistics, images, training, masks=masks)
        sliced, sliced_statistics = functional.call_with_weights(
            network, weights, statistics, images, training,
            masks=functional.SlicedMasks(masks))
        # A nonlinear read-out, so every logit's gradient differs.
        masked_loss = tf.reduce_sum(tf.sin(masked))
        sliced_loss = tf.reduce_sum(tf.sin(sliced))
    np.testing.assert_allclose(sliced, masked, rtol=0, atol=1e-11)
    for got, want in zip(sliced_statistics, masked_statistics):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    sliced_gradients = tape.gradient(sliced_loss, weights)
    masked_gradients = tape.gradient(masked_loss, weights)
    for got, want in zip(sliced_gradients, masked_gradients):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # The removed channels' constants matter: their betas get gradient through the
    # next layer's kernel (block 0's removed channels feed block 1).
    removed_beta_gradient = np.asarray(masked_gradients[3])[5:]
    assert np.abs(removed_beta_gradient).max() > 1e-3
    # Removed kernel columns get exactly zero gradient on the sliced path too.
    for index in range(0, 16, 4):
        assert not np.asarray(sliced_gradients[index])[..., 5:].any()


def float64_batch(seed=0, tasks=2, size=16):
    batch = make_episode_batch(seed, tasks=tasks, n_way=3, k_shot=2, k_query=2, size=size)
    return tf.nest.map_structure(
        lambda x: x.astype("float64") if x.dtype == "float32" else x, batch)


def make_learner(kind, execution, size=16, recompute=False, **augment):
    keras.utils.set_random_seed(0)
    augment.setdefault("keep_range", (0.5, 0.8))
    augmentation = mg.MGAug("random_width", num_subnets=2, seed=3, width_execution=execution,
                            **augment)
    backbone = mg.Conv4(filters=8, dtype="float64")
    if kind == "protonet":
        learner = mg.ProtoNet(backbone, 3, augmentation=augmentation)
    else:
        learner = mg.registry.learner_class(kind)(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.1,
                                inner_steps=2, augmentation=augmentation, recompute=recompute)
    learner.build((size, size, 1))
    randomize(learner, 5)
    return learner


def meta_gradients_and_logs(learner, batch, function=False):
    step = learner._meta_gradients_and_logs
    if function:
        step = tf.function(step)
    gradients, logs, _ = step(batch)
    return [np.asarray(gradient) for gradient in gradients], {
        name: float(value) for name, value in logs.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_sliced_meta_gradient_equals_the_masked_one(kind):
    """Same masks (same seeds), same losses and meta-gradients, for every learner."""
    batch = float64_batch()
    sliced = make_learner(kind, "sliced")
    masked = make_learner(kind, "masked")
    assert sliced.augmentation.executes_sliced(sliced)
    assert not masked.augmentation.executes_sliced(masked)
    got, got_logs = meta_gradients_and_logs(sliced, batch)
    want, want_logs = meta_gradients_and_logs(masked, batch)
    for name in ("loss", "subnet_loss", "sparsity_0", "sparsity_1"):  # logged in float32
        np.testing.assert_allclose(got_logs[name], want_logs[name], rtol=1e-7)
    assert want_logs["sparsity_1"] > 0.3  # keep ratio 0.5: about half the channels go
    # Measured: at most 3e-12 (ProtoNet) for gradients of scale 1-3.
    scale = max(np.abs(gradient).max() for gradient in want)
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=0, atol=1e-11 * scale)
    # One sub-network's float64 query loss, after the inner loop where there is one.
    task = sliced._split_tasks(batch)[1]
    masks = channel_masks(sliced.network, 0.5)
    np.testing.assert_allclose(
        sliced.task_outcome(task, masks=functional.SlicedMasks(masks)).query_loss,
        masked.task_outcome(task, masks=masks).query_loss, rtol=1e-12)


@pytest.mark.slow  # 40 s on 2 busy cores; the default run has ANIL's (test_recompute.py)
def test_recomputed_sliced_steps_equal_the_stored_masked_ones():
    """tf.recompute_grad re-runs the sliced inner steps with run-time channel counts."""
    batch = float64_batch(3)
    got, _ = meta_gradients_and_logs(make_learner("maml", "sliced", recompute=True), batch)
    want, _ = meta_gradients_and_logs(make_learner("maml", "masked"), batch)
    scale = max(np.abs(gradient).max() for gradient in want)
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=0, atol=1e-11 * scale)


# MAML's second-order graphs at drawn resolutions take over a minute to trace on 2 busy cores.
@pytest.mark.parametrize("kind", ["fomaml", "protonet",
                                  pytest.param("maml", marks=pytest.mark.slow)])
def test_sliced_equals_masked_with_drawn_resolutions_in_the_graph_loop(kind):
    """Parity, resolutions drawn at run time, the reference flatten-head rule (FOMAML, MAML)."""
    batch = float64_batch(1, size=32)
    options = dict(size=32, resolutions=(32, 16), parity=True)
    sliced = make_learner(kind, "sliced", **options)
    masked = make_learner(kind, "masked", **options)
    augmentation = sliced.augmentation
    sizes = {int(subnet_task.support_images.shape[1])
             for index, task in enumerate(sliced._split_tasks(batch))
             for subnet_task in augmentation.draw_subnetworks(
                 sliced, augmentation.task_seed(sliced, index), task=task).tasks}
    assert sizes == {32, 16}  # the smaller grid (1 x 1 of 2 x 2) is drawn
    # Eager in the default run (tracing is what takes the time); MAML's run is
    # traced, so the sub-network loop is a graph while_loop with run-time sizes.
    traced = kind == "maml"
    got, got_logs = meta_gradients_and_logs(sliced, batch, function=traced)
    want, want_logs = meta_gradients_and_logs(masked, batch, function=traced)
    np.testing.assert_allclose(got_logs["subnet_loss"], want_logs["subnet_loss"], rtol=1e-12)
    scale = max(np.abs(gradient).max() for gradient in want)
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=0, atol=1e-10 * scale)


def test_the_meta_step_traces_once_across_draws():
    """Kept channels are drawn per sub-network at run time: one trace serves them all."""
    learner = make_learner("fomaml", "sliced", keep_range=(0.3, 0.9))
    learner.compile(keras.optimizers.SGD(0.0))
    step = tf.function(learner.train_step)
    sparsities = set()
    for seed in range(3):
        logs = step(float64_batch(seed))
        assert np.isfinite(float(logs["subnet_loss"]))
        sparsities.add(round(float(logs["sparsity_0"]), 6))  # sparsity_1: keep_min
    assert len(sparsities) > 1  # other widths were drawn
    assert step.experimental_get_tracing_count() == 1


def conv_flops(function, *args):
    # pylint: disable-next=import-outside-toplevel
    from tensorflow.python.profiler import model_analyzer, option_builder
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    options["account_type_regexes"] = ["Conv2D"]
    graph = tf.function(function).get_concrete_function(*args).graph
    return model_analyzer.profile(graph, options=options).total_float_ops


def test_sliced_convolutions_cost_about_r_squared():
    """Static FLOP count (masks fixed when traced, so shapes are static)."""
    network = make_network(filters=16)
    weights = functional.read_values(network.trainable_variables)
    statistics = functional.read_values(network.non_trainable_variables)
    images = tf.zeros([5, 32, 32, 1], tf.float64)
    masks = [None if mask is None else tf.constant(mask) for mask in channel_masks(network, 0.5)]

    def forward(masks):
        return lambda: functional.call_with_weights(network, weights, statistics, images, True,
                                                    masks=masks)[0]

    full = conv_flops(forward(masks))  # the masked pass costs the full network's
    sliced = conv_flops(forward(functional.SlicedMasks(masks)))
    # Layer l: 2 * B * H_l * W_l * 9 * C_in * C_out; grids 32, 16, 8, 4; C_in 1 then 16.
    grids = [32 * 32, 16 * 16, 8 * 8, 4 * 4]
    assert full == sum(2 * 5 * grid * 9 * (1 if l == 0 else 16) * 16
                       for l, grid in enumerate(grids))
    # 8 of 16 channels kept; plus one batch-1, 1-channel convolution per layer
    # after the first for the removed channels' constants.
    main = sum(2 * 5 * grid * 9 * (1 if l == 0 else 8) * 8 for l, grid in enumerate(grids))
    constants = sum(2 * 1 * grid * 9 * 1 * 8 for grid in grids[1:])
    assert sliced == main + constants
    # Layers whose input is sliced too cost exactly r^2; the first (one input
    # channel) costs r; the constants add a little.
    first_full, first_sliced = 2 * 5 * grids[0] * 9 * 16, 2 * 5 * grids[0] * 9 * 8
    assert (main - first_sliced) / (full - first_full) == 0.25
    assert 0.25 < sliced / full < 0.3


def test_sliced_execution_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="random_width"):
        mg.MGAug("catfish", width_execution="sliced")
    with pytest.raises(ValueError, match="`width_execution` must be one of"):
        mg.MGAug("random_width", width_execution="narrow")
    resnet = mg.FewShotClassifier(mg.ResNet12(widths=(4, 4, 4, 4)), 3)
    with pytest.raises(ValueError, match="ResNet12.*no sliced_call"):
        mg.MAML(resnet, 3, augmentation=mg.MGAug("random_width", width_execution="sliced"))
    # "auto" picks masked there, and sliced for a Conv4 learner whose
    # sub-networks keep at most half of the channels (where slicing was
    # measured faster), masked for the default keep range (0.8, 1).
    auto = mg.MAML(resnet, 3, augmentation=mg.MGAug("random_width", keep_range=(0.5, 0.5)))
    assert not auto.augmentation.executes_sliced(auto)
    conv4 = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                    augmentation=mg.MGAug("random_width", keep_range=(0.5, 0.5)))
    assert conv4.augmentation.executes_sliced(conv4)
    wide = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                   augmentation=mg.MGAug("random_width"))
    assert not wide.augmentation.executes_sliced(wide)
    forced = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                     augmentation=mg.MGAug("random_width", width_execution="sliced"))
    assert forced.augmentation.executes_sliced(forced)
    catfish = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                      augmentation=mg.MGAug("catfish"))
    assert not catfish.augmentation.executes_sliced(catfish)
    # A keep ratio that keeps no channel of a layer (round(0.1 * 4) = 0).
    tiny = mg.MGAug("random_width", keep_range=(0.1, 0.5))
    narrow = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, augmentation=tiny)
    assert not tiny.executes_sliced(narrow)
    with pytest.raises(ValueError, match=r"keep ratio 0.1 keeps no channel of \['conv0'"):
        mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, augmentation=mg.MGAug(
            "random_width", keep_range=(0.1, 0.5), width_execution="sliced"))
    # A conv network without sliced_call refuses SlicedMasks rather than masking silently.
    resnet.build((None, 16, 16, 1))
    with pytest.raises(ValueError, match="no sliced_call"):
        functional.call_with_weights(
            resnet.backbone, functional.read_values(resnet.backbone.trainable_variables),
            functional.read_values(resnet.backbone.non_trainable_variables),
            tf.zeros([1, 16, 16, 1]), masks=functional.SlicedMasks(
                [None] * len(resnet.backbone.trainable_variables)))


def test_sliced_second_order_meta_gradient_matches_finite_differences():
    """Independently of the masked pass: MAML's sub-network meta-gradient, fixed masks."""
    from mgaug_tf.gradient_check import FiniteDifferences  # pylint: disable=import-outside-toplevel
    learner = make_learner("maml", "sliced")
    batch = float64_batch(2, tasks=1)
    task = learner._split_tasks(batch)[0]
    masks = functional.SlicedMasks(channel_masks(learner.network, 0.5))
    _, gradients = learner.task_gradients(task, learner.trainable_variables, masks=masks)
    differences = FiniteDifferences(
        learner, batch, meta_loss=lambda: learner.task_outcome(task, masks=masks).query_loss)
    errors = [differences.directional(gradients, seed)[2] for seed in range(2)]
    # Block 0's removed betas reach the loss only through the constants.
    errors.append(differences.coordinate(gradients, 3, 7)[2])
    assert max(errors) < 1e-6, errors
