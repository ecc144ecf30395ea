"""MGAug inside the learners: invariants, exact aggregation, maxup, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.errors import ArgumentError
from tests.augment import invariants
from tests.conftest import make_episode_batch


def make_learner(kind, augmentation=None, seed=0, pooling="flatten", dtype="float32",
                 image_size=16, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = mg.Conv4(filters=4, pooling=pooling, dtype=dtype)
    if kind == "protonet":
        learner = mg.ProtoNet(backbone, 3, augmentation=augmentation)
    else:
        network = mg.FewShotClassifier(backbone, 3)
        learner = mg.registry.learner_class(kind)(network, 3, inner_lr=0.1, inner_steps=2,
                                augmentation=augmentation, **kwargs)
    learner.build((image_size, image_size, 1))
    return learner


@pytest.fixture(scope="module")
def batch():
    return make_episode_batch(0, tasks=2, n_way=3, k_shot=2, k_query=2, size=16)


@pytest.mark.parametrize("kind", ["maml", "fomaml", "anil", "metasgd", "protonet"])
@pytest.mark.parametrize("strategy", ["random_param", "catfish"])
def test_full_keep_range_gives_k_plus_one_times_the_plain_gradient(kind, strategy, batch):
    """Sub-networks restart from theta and the sum is right (to float64 rounding)."""
    batch = tf.nest.map_structure(lambda x: x.astype("float64") if x.dtype == "float32" else x,
                                  batch)
    plain = make_learner(kind, dtype="float64")
    augmented = make_learner(kind, mg.MGAug(strategy, num_subnets=3, keep_range=(1.0, 1.0)),
                             dtype="float64")
    invariants.copy_weights(plain, augmented)
    _, plain_gradients = plain.compute_meta_gradients(batch)
    _, augmented_gradients = augmented.compute_meta_gradients(batch)
    for got, want in zip(augmented_gradients, plain_gradients):
        np.testing.assert_allclose(got, 4.0 * np.asarray(want), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["maml", "protonet"])
@pytest.mark.parametrize("strategy", ["random_width", "random_param", "catfish", "snip"])
def test_augmented_gradient_is_sum_of_separate_full_and_subnet_gradients(kind, strategy, batch):
    augmentation = mg.MGAug(strategy, num_subnets=2, keep_range=(0.5, 0.9), seed=4)
    learner = make_learner(kind, augmentation)
    _, combined = learner.compute_meta_gradients(batch)
    learner.meta_step.assign(0)  # replay the same draws
    variables = learner.trainable_variables
    network_positions = [next(i for i, v in enumerate(variables) if v is w)
                         for w in learner.network.trainable_variables]
    expected = [tf.zeros_like(v) for v in variables]
    for task_index, task in enumerate(learner._split_tasks(batch)):
        _, full = learner.task_gradients(task, variables)
        seed = augmentation.task_seed(learner, task_index)
        subnet_masks = augmentation.draw_subnetworks(
            learner, seed, [full[i] for i in network_positions]).masks
        expected = [e + g for e, g in zip(expected, full)]
        for masks in subnet_masks:
            # The same execution as MGAug's (random_width runs sliced on Conv4): the
            # conv biases' gradients are rounding noise (batch norm cancels them).
            run_masks = (functional.SlicedMasks(masks) if augmentation.executes_sliced(learner)
                         else masks)
            _, sub = learner.task_gradients(task, variables, masks=run_masks)
            expected = [e + g for e, g in zip(expected, sub)]
            assert 0.0 < float(masks_lib.sparsity(masks, learner.network.trainable_variables))
    for got, want in zip(combined, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strategy", ["random_width", "random_param", "catfish"])
def test_masked_entries_get_zero_gradient_in_inner_loop_and_meta_gradient(strategy, batch):
    learner = make_learner("maml", mg.MGAug(strategy, keep_range=(0.6, 0.6)))
    task = learner._split_tasks(batch)[0]
    variables = learner.trainable_variables
    before = [v.numpy().copy() for v in variables]
    masked_layers = len(invariants.assert_pruned_entries_stay_frozen(learner, task, 3))
    assert masked_layers == 4
    learner.compute_meta_gradients(batch)
    for variable, value in zip(variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)  # stored weights untouched


def test_maxup_back_propagates_only_the_largest_subnet_loss(batch):
    augmentation = mg.MGAug("random_param", num_subnets=3, keep_range=(0.3, 0.9),
                            reduction="maxup", seed=1)
    learner = make_learner("maml", augmentation)
    one_task = tf.nest.map_structure(lambda x: x[:1], batch)
    _, combined = learner.compute_meta_gradients(one_task)
    learner.meta_step.assign(0)
    variables = learner.trainable_variables
    task = learner._split_tasks(one_task)[0]
    _, full = learner.task_gradients(task, variables)
    subnet_masks = augmentation.draw_subnetworks(learner, augmentation.task_seed(learner, 0)).masks
    outcomes = [learner.task_gradients(task, variables, masks=m) for m in subnet_masks]
    losses = [float(outcome.query_loss) for outcome, _ in outcomes]
    assert len(set(losses)) == 3
    worst = outcomes[int(np.argmax(losses))][1]
    for got, f, w in zip(combined, full, worst):
        np.testing.assert_allclose(got, f + w, rtol=1e-5, atol=1e-6)


def test_mean_reduction_divides_by_k_plus_one(batch):
    plain = make_learner("maml")
    mean = make_learner("maml", mg.MGAug("catfish", num_subnets=3, keep_range=(1.0, 1.0),
                                         reduction="mean"))
    invariants.copy_weights(plain, mean)
    _, want = plain.compute_meta_gradients(batch)
    _, got = mean.compute_meta_gradients(batch)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_fit_logs_mgaug_metrics_without_retracing(batch):
    learner = make_learner("fomaml", mg.MGAug("random_param", num_subnets=2,
                                              keep_ratio_sampler=mg.augment.ConstantKeepRatio(0.5)))
    learner.compile(keras.optimizers.Adam(1e-3))
    traces = []
    original = learner.train_step
    learner.train_step = lambda data: (traces.append(1), original(data))[1]
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    history = learner.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0).history
    assert len(traces) == 1
    for name in ("subnet_loss", "subnet_accuracy", "full_grad_norm", "augmented_grad_norm",
                 "sparsity_0", "sparsity_1"):
        assert np.all(np.isfinite(history[name])), name
    sizes = [int(np.prod(v.shape)) for v, p in zip(
        learner.network.trainable_variables,
        masks_lib.prunable_weights(learner.network)) if p]
    expected = sum(n - round(0.5 * n) for n in sizes) / sum(sizes)
    assert history["sparsity_0"][-1] == pytest.approx(expected, rel=1e-6)
    assert int(learner.meta_step.numpy()) == 6
    # Evaluation uses the full network only (no sub-network metrics).
    assert set(learner.evaluate(dataset, steps=1, verbose=0, return_dict=True)) == {
        "loss", "accuracy"}


def test_multi_resolution_subnets_see_resized_images():
    batch = make_episode_batch(2, tasks=1, n_way=3, k_shot=1, k_query=1, size=24)
    seen = []
    augmentation = mg.MGAug("random_param", num_subnets=2, resolutions=(16, 20))
    learner = make_learner("protonet", augmentation, image_size=24)
    original = learner._query_logits

    def recording(weights, task, masks=None, training=True):
        seen.append(tuple(task.support_images.shape))
        return original(weights, task, masks, training)

    learner._query_logits = recording
    _, gradients = learner.compute_meta_gradients(batch)
    assert all(np.all(np.isfinite(g)) for g in gradients)
    assert seen[0] == (3, 24, 24, 1)  # the full network is never resized
    assert all(shape[1:3] in ((16, 16), (20, 20), (None, None)) for shape in seen[1:])
    maml = make_learner("maml", mg.MGAug(resolutions=(16,)), pooling="avg", image_size=24)
    assert np.isfinite(float(maml.compute_meta_gradients(batch)[0]))


def test_bad_mgaug_settings_raise_at_construction():
    with pytest.raises(ValueError, match="num_subnets"):
        mg.MGAug(num_subnets=0)
    with pytest.raises(ArgumentError, match="`strategy` must name a pruning strategy"):
        mg.MGAug("magnitude")
    with pytest.raises(ValueError, match="keep ratio"):
        mg.MGAug(keep_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="keep ratio"):
        mg.MGAug(keep_range=(0.5, 1.2))
    with pytest.raises(ValueError, match="reduction"):
        mg.MGAug(reduction="max")
    with pytest.raises(ArgumentError, match="at most the input images' 84 px"):
        mg.MGAug(resolutions=(96, 64), image_size=84)
    with pytest.raises(ArgumentError, match="at most the input images' 16 px"):
        make_learner("protonet", mg.MGAug(resolutions=(32,)))  # built at 16 px
    with pytest.raises(ArgumentError, match="pooling='avg'") as error:
        make_learner("maml", mg.MGAug(resolutions=(16,)))
    assert error.value.argument == "flatten_head"
    with pytest.raises(ArgumentError, match="at least Conv4's min_input_size") as error:
        make_learner("maml", mg.MGAug(resolutions=(12,), flatten_head="reference"))
    assert error.value.argument == "resolutions"
