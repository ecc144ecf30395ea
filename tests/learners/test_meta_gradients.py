"""Meta-gradients proven right: finite differences in float64 and closed forms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional, inner_loop
from mgaug_tf.learners.base import cross_entropy
from tests.conftest import make_episode_batch
from mgaug_tf.gradient_check import FiniteDifferences

TOLERANCE = 1e-6


def small_classifier(n_way=3, filters=3, seed=0):
    keras.utils.set_random_seed(seed)
    return mg.FewShotClassifier(mg.Conv4(filters=filters, dtype="float64"), n_way)


def learner_of(kind, **kwargs):
    network = small_classifier()
    settings = dict(inner_lr=0.1, inner_steps=5)
    settings.update(kwargs)
    learner = kind(network, 3, **settings)
    learner.build((16, 16, 1))
    return learner


def compiled_gradients(learner, batch):
    return tf.function(learner.compute_meta_gradients)(batch)[1]


@pytest.fixture(scope="module")
def batch():
    return make_episode_batch(0, tasks=2, n_way=3, k_shot=2, k_query=2, size=16,
                              dtype="float64")


@pytest.mark.parametrize("kind", [mg.MAML, mg.ANIL, mg.MetaSGD])
def test_second_order_meta_gradient_matches_finite_differences(kind, batch):
    """Conv4 with batch norm and max-pool, 5 inner steps, 2 tasks, float64."""
    learner = learner_of(kind)
    gradients = compiled_gradients(learner, batch)
    assert all(g.dtype == tf.float64 for g in gradients)
    differences = FiniteDifferences(learner, batch)
    errors = [differences.directional(gradients, seed)[2] for seed in range(3)]
    assert max(errors) < TOLERANCE, errors
    # Single coordinates: the first conv kernel, a batch-norm gamma, the head bias.
    names = [v.path for v in learner.trainable_variables]
    for name in ("conv0/kernel", "bn2/gamma", "head/bias"):
        index = next(i for i, path in enumerate(names) if path.endswith(name))
        _, _, error = differences.coordinate(gradients, index, 1)
        assert error < TOLERANCE, (name, error)


@pytest.mark.slow
def test_meta_sgd_learning_rate_gradients_match_finite_differences(batch):
    learner = learner_of(mg.MetaSGD)
    gradients = compiled_gradients(learner, batch)
    rate_ids = {id(v) for v in learner.inner_learning_rate_variables}
    rate_indices = [i for i, v in enumerate(learner.trainable_variables) if id(v) in rate_ids]
    assert len(rate_indices) == len(learner.network.trainable_variables)
    differences = FiniteDifferences(learner, batch)
    checked = 0
    for index in rate_indices[:1] + rate_indices[-2:]:
        _, numeric, error = differences.coordinate(gradients, index, 0)
        assert abs(numeric) > 1e-8  # the learning rate does influence the meta-loss
        assert error < TOLERANCE, (learner.trainable_variables[index].path, error)
        checked += 1
    assert checked == 3


def test_fomaml_gradient_is_query_gradient_at_adapted_weights(batch):
    fomaml = learner_of(mg.FOMAML)
    maml = learner_of(mg.MAML)
    for target, source in zip(maml.trainable_variables, fomaml.trainable_variables):
        target.assign(source)
    fomaml_gradients = compiled_gradients(fomaml, batch)
    maml_gradients = compiled_gradients(maml, batch)

    expected = None
    for task in fomaml._split_tasks(batch):
        theta = functional.read_values(fomaml.network.trainable_variables)

        def support_loss(weights, task=task):
            logits, _ = fomaml._network_call(weights, task.support_images)
            return cross_entropy(task.support_labels, logits)

        adapted = inner_loop.adapt(support_loss, theta, 0.1, 5)
        with tf.GradientTape() as tape:
            tape.watch(adapted)
            logits, _ = fomaml._network_call(adapted, task.query_images)
            loss = cross_entropy(task.query_labels, logits)
        task_gradients = tape.gradient(loss, adapted)
        expected = task_gradients if expected is None else [
            a + b for a, b in zip(expected, task_gradients)]
    for got, want in zip(fomaml_gradients, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    difference = tf.linalg.global_norm([a - b for a, b in zip(maml_gradients, fomaml_gradients)])
    assert float(difference) > 1e-3 * float(tf.linalg.global_norm(maml_gradients))


def test_linear_softmax_maml_matches_closed_form():
    """One inner step on a linear softmax classifier: g = (I - a H_s) grad L_q(theta')."""
    n_way, shots, queries, dims, alpha = 3, 2, 4, 5, 0.5
    keras.utils.set_random_seed(1)
    backbone = keras.Sequential([keras.layers.Flatten(dtype="float64")])
    network = mg.FewShotClassifier(backbone, n_way, dtype="float64")
    learner = mg.MAML(network, n_way, inner_lr=alpha,
                      inner_steps=1)
    learner.build((dims, 1, 1))
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(dims, n_way))
    bias = rng.normal(size=(n_way,))
    learner.network.head.kernel.assign(kernel)
    learner.network.head.bias.assign(bias)
    support_labels = rng.permutation(np.repeat(np.arange(n_way), shots))[None].astype("int32")
    query_labels = rng.permutation(np.repeat(np.arange(n_way), queries))[None].astype("int32")
    support_images = rng.normal(size=(1, n_way * shots, dims, 1, 1))
    query_images = rng.normal(size=(1, n_way * queries, dims, 1, 1))
    batch = ((support_images, support_labels, query_images), query_labels)

    def augmented(images):
        flat = images.reshape(len(images), dims)
        return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)

    def softmax(logits):
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    theta = np.concatenate([kernel, bias[None]], axis=0)
    xs, xq = augmented(support_images[0]), augmented(query_images[0])
    ys, yq = np.eye(n_way)[support_labels[0]], np.eye(n_way)[query_labels[0]]
    ps = softmax(xs @ theta)
    adapted = theta - alpha * xs.T @ (ps - ys) / len(xs)
    query_gradient = xq.T @ (softmax(xq @ adapted) - yq) / len(xq)
    projected = xs @ query_gradient
    hessian_product = xs.T @ (ps * projected - ps * (ps * projected).sum(1, keepdims=True)) / len(xs)
    expected = query_gradient - alpha * hessian_product

    _, gradients = learner.compute_meta_gradients(batch)
    np.testing.assert_allclose(gradients[0], expected[:-1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gradients[1], expected[-1], rtol=1e-10, atol=1e-13)


def test_stock_keras_batch_norm_agrees_forward_with_ours():
    """Same forward values as Keras's BN (ours differs only in its gradients)."""
    x = tf.random.stateless_normal([6, 4, 4, 3], seed=[1, 2], dtype=tf.float64) * 3 + 1
    ours = mg.MetaBatchNormalization(epsilon=1e-3, dtype="float64")
    stock = keras.layers.BatchNormalization(epsilon=1e-3, dtype="float64")
    np.testing.assert_allclose(ours(x, training=True), stock(x, training=True), atol=1e-12)


@pytest.mark.slow
def test_resnet12_meta_gradient_matches_finite_differences():
    keras.utils.set_random_seed(2)
    backbone = mg.ResNet12(widths=(2, 3, 3, 4), dtype="float64")
    learner = mg.MAML(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.1, inner_steps=2)
    learner.build((16, 16, 1))
    batch = make_episode_batch(5, tasks=1, n_way=3, k_shot=2, k_query=1, size=16,
                               dtype="float64")
    gradients = compiled_gradients(learner, batch)
    _, _, error = FiniteDifferences(learner, batch).directional(gradients, seed=7)
    assert error < TOLERANCE


# tests/learners/test_recompute.py holds recompute == stored steps for every
# learner in the default run; this larger case (2 tasks, with a
# finite-difference check) is slow.
@pytest.mark.slow
@pytest.mark.parametrize("kind", [mg.MAML, mg.MetaSGD])
def test_recomputed_inner_steps_give_the_same_meta_gradient(kind, batch):
    """Recomputation trades memory for time and changes nothing else."""
    stored = learner_of(kind)
    recomputed = learner_of(kind, recompute=True)
    for source, target in zip(stored.variables, recomputed.variables):
        target.assign(source)
    expected = compiled_gradients(stored, batch)
    got = compiled_gradients(recomputed, batch)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    if kind is mg.MAML:
        _, _, error = FiniteDifferences(recomputed, batch).directional(got, seed=11)
        assert error < TOLERANCE
