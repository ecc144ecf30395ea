"""The vectorized path (tasks and sub-networks as grouped computation) against the per-task one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from mgaug_tf.backbones import grouped
from mgaug_tf.gradient_check import FiniteDifferences
from tests.conftest import make_episode_batch

LEARNERS = {"maml": mg.MAML, "fomaml": mg.FOMAML, "metasgd": mg.MetaSGD}


def to_float64(batch):
    return tf.nest.map_structure(
        lambda x: x.astype("float64") if x.dtype == "float32" else x, batch)


def make_pair(kind="maml", augmentation=None, pooling="flatten", dtype="float64", **kwargs):
    """The same learner (same initial weights) on the per-task and the vectorized path."""
    learners = []
    for vectorize in (False, True):
        keras.utils.set_random_seed(7)
        network = mg.FewShotClassifier(mg.Conv4(filters=3, pooling=pooling, dtype=dtype), 3)
        learner = LEARNERS[kind](network, 3, inner_lr=0.3, inner_steps=2, vectorize=vectorize,
                                 augmentation=augmentation() if augmentation else None,
                                 **kwargs)
        learner.build((16, 16, 1))
        learners.append(learner)
    return learners


@pytest.fixture(scope="module")
def batch():
    return to_float64(make_episode_batch(3, tasks=3, n_way=3, k_shot=2, k_query=2, size=16))


@pytest.mark.parametrize("pooling", ["flatten", "avg"])
def test_grouped_call_equals_separate_calls(pooling):
    network = mg.FewShotClassifier(mg.Conv4(filters=3, pooling=pooling, dtype="float64"), 4)
    network.build((None, 16, 16, 2))
    rng = np.random.default_rng(0)
    stacked = [tf.constant(np.stack([np.asarray(w) + 0.1 * rng.normal(size=w.shape)
                                     for _ in range(3)])) for w in network.trainable_variables]
    images = tf.constant(rng.normal(size=(3, 5, 16, 16, 2)))
    grouped = network.grouped_call(stacked, images)
    for group in range(3):
        separate, _ = functional.call_with_weights(
            network, [w[group] for w in stacked],
            functional.read_values(network.non_trainable_variables), images[group],
            training=True)
        np.testing.assert_allclose(grouped[group], separate, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind,kwargs", [
    ("maml", {}), ("fomaml", {}), ("metasgd", {}), ("maml", {"recompute": True}),
    ("maml", {"task_reduction": "mean"})])
def test_vectorized_meta_gradients_equal_per_task(kind, kwargs, batch):
    per_task, vectorized = make_pair(kind, **kwargs)
    loss, want = per_task.compute_meta_gradients(batch)
    vector_loss, got = vectorized.compute_meta_gradients(batch)
    np.testing.assert_allclose(vector_loss, loss, rtol=1e-12)
    assert len(got) == len(want) == len(per_task.trainable_variables)
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("strategy,reduction", [
    ("catfish", "sum"), ("catfish", "maxup"), ("random_param", "mean"), ("random_width", "sum")])
def test_vectorized_mgaug_equals_per_task(strategy, reduction, batch):
    """Same masks (seeds, per-task catfish scores), same sub-network meta-gradients."""
    per_task, vectorized = make_pair("maml", lambda: mg.MGAug(
        strategy, num_subnets=2, keep_range=(0.5, 0.9), reduction=reduction, seed=5))
    want, want_logs, _ = per_task._meta_gradients_and_logs(batch)
    got, got_logs, _ = vectorized._meta_gradients_and_logs(batch)
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-9, atol=1e-12)
    assert set(got_logs) == set(want_logs)
    for name in ("loss", "accuracy", "accuracy_before", "subnet_loss", "subnet_accuracy",
                 "full_grad_norm", "augmented_grad_norm", "sparsity_0", "sparsity_1"):
        np.testing.assert_allclose(got_logs[name], want_logs[name], rtol=1e-6, err_msg=name)
    # The draws did prune something: this is not the full network twice.
    assert float(got_logs["sparsity_1"]) > 0.05


@pytest.mark.parametrize("kind", ["maml", "metasgd"])
def test_vectorized_meta_gradients_match_finite_differences(kind, batch):
    """Directly against the meta-loss, not only against the per-task path."""
    _, learner = make_pair(kind)
    _, gradients = learner.compute_meta_gradients(batch)
    differences = FiniteDifferences(learner, batch)
    errors = [differences.directional(gradients, seed)[2] for seed in range(2)]
    assert max(errors) < 1e-6, errors


def test_vectorized_fit_matches_per_task(batch):
    per_task, vectorized = make_pair("maml", lambda: mg.MGAug("catfish", num_subnets=2))
    dataset = tf.data.Dataset.from_tensors(batch).repeat(3)
    for learner in (per_task, vectorized):
        learner.compile(optimizer=keras.optimizers.SGD(0.05))
        learner.fit(dataset, epochs=1, verbose=0)
    for a, b in zip(per_task.trainable_variables, vectorized.trainable_variables):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)
    assert int(vectorized.meta_step.numpy()) == 3


@pytest.mark.parametrize("make,message", [
    (lambda: mg.ANIL(mg.FewShotClassifier(mg.Conv4(filters=3), 3), 3, vectorize=True),
     "ANIL adapts only part"),
    (lambda: mg.MAML(mg.FewShotClassifier(mg.ResNet12(widths=(4, 4, 4, 4)), 3), 3,
                     vectorize=True), "ResNet12"),
    (lambda: mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=3), 3), 3, vectorize=True,
                     bn_mode="inductive"), "transductive"),
    (lambda: mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=3, pooling="avg"), 3), 3,
                     vectorize=True, augmentation=mg.MGAug("catfish", resolutions=[8])),
     "resolutions"),
])
def test_vectorize_rejects_what_it_cannot_run(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_grouped_convolution_equals_split_to_second_order():
    """float32: the grouped op (float64 tests use "split") to second derivatives."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(4, 10, 10, 3 * 2)), tf.float32)
    kernel = tf.constant(0.3 * rng.normal(size=(3, 3, 3, 2, 5)), tf.float32)
    bias = tf.constant(rng.normal(size=(3, 5)), tf.float32)

    def derivatives(implementation):
        with tf.GradientTape() as outer:
            outer.watch([x, kernel])
            with tf.GradientTape() as inner:
                inner.watch([x, kernel])
                y = grouped.conv2d(x, kernel, bias, tf.float32, implementation)
                loss = tf.reduce_sum(tf.sin(y))
            grad_x, grad_kernel = inner.gradient(loss, [x, kernel])
            curvature = tf.reduce_sum(tf.square(grad_x)) + tf.reduce_sum(tf.square(grad_kernel))
        return [y, grad_x, grad_kernel] + outer.gradient(curvature, [x, kernel])

    for got, want in zip(derivatives("grouped"), derivatives("split")):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * float(tf.reduce_max(
            tf.abs(want))))
