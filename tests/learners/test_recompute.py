"""Recomputed inner steps (`recompute=True`) change memory, never the meta-gradient.

`tf.recompute_grad` differentiates only the recomputed step's arguments, so
every tensor the support loss reads (images, masks, ANIL's backbone features)
must reach the step as an argument (`inner_loop.adapt(..., inputs=...)`).
Before this was so, ANIL's backbone meta-gradients were 18-32 % off per conv
kernel (27 % overall) with `recompute=True`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import inner_loop
from mgaug_tf.gradient_check import FiniteDifferences
from tests.conftest import make_episode_batch

# The gradient learners: every registered learner with an inner loop to recompute.
LEARNERS = ("anil", "fomaml", "maml", "metasgd")
STRATEGIES = [None, "catfish", "random_param", "random_width", "snip"]


def meta_gradients(kind, recompute, strategy=None, resolutions=None, batch=None):
    keras.utils.set_random_seed(0)
    pooling = "avg" if resolutions else "flatten"
    network = mg.FewShotClassifier(mg.Conv4(filters=3, pooling=pooling, dtype="float64"), 3)
    augmentation = None if strategy is None else mg.MGAug(
        strategy, num_subnets=2, keep_range=(0.5, 0.9), resolutions=resolutions, seed=3)
    learner = mg.registry.learner_class(kind)(network, 3, inner_lr=0.1, inner_steps=2, recompute=recompute,
                             augmentation=augmentation)
    size = batch[0][0].shape[-2]
    learner.build((size, size, 1))
    return learner, [np.asarray(g) for g in tf.function(learner.compute_meta_gradients)(batch)[1]]


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        # float64 rounding: the two paths sum the same terms in another order.
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13)


@pytest.fixture(scope="module")
def batch16():
    return make_episode_batch(0, tasks=1, n_way=3, k_shot=2, k_query=2, size=16,
                              dtype="float64")


@pytest.fixture(scope="module")
def batch24():
    # Conv4 halves the size four times: sub-network resolutions 16 and 20 still
    # leave a 1x1 map.
    return make_episode_batch(1, tasks=1, n_way=3, k_shot=2, k_query=2, size=24,
                              dtype="float64")


# The default run covers every learner and every strategy once (an MGAug
# meta-gradient includes the plain full-network one), ANIL plain and
# resolutions; the whole cross product is `slow` (its tracing takes minutes).
FAST = {("anil", None), ("maml", "catfish"), ("fomaml", "random_param"),
        ("anil", "random_width"), ("metasgd", "snip")}


def cases(strategies):
    return [pytest.param(kind, strategy, marks=() if (kind, strategy) in FAST
                         else pytest.mark.slow)
            for kind in sorted(LEARNERS) for strategy in strategies]


@pytest.mark.parametrize("kind,strategy", cases(STRATEGIES))
def test_recompute_equals_stored_steps(kind, strategy, batch16):
    _, want = meta_gradients(kind, False, strategy, batch=batch16)
    _, got = meta_gradients(kind, True, strategy, batch=batch16)
    assert_same(got, want)


@pytest.mark.parametrize("kind,strategy", [
    pytest.param(kind, strategy, marks=() if kind == "anil" and strategy == "catfish"
                 else pytest.mark.slow)
    for kind in sorted(LEARNERS) for strategy in STRATEGIES[1:]])
def test_recompute_equals_stored_steps_with_resolutions(kind, strategy, batch24):
    """Sub-networks on resized support and query images (avg-pooled backbone)."""
    _, want = meta_gradients(kind, False, strategy, resolutions=(16, 20), batch=batch24)
    _, got = meta_gradients(kind, True, strategy, resolutions=(16, 20), batch=batch24)
    assert_same(got, want)


def test_recompute_equals_stored_steps_over_two_tasks():
    """The meta-batch's task loop around recomputed steps (the other tests take one task)."""
    two_tasks = make_episode_batch(2, tasks=2, n_way=3, k_shot=2, k_query=2, size=16,
                                   dtype="float64")
    _, want = meta_gradients("maml", False, "catfish", batch=two_tasks)
    _, got = meta_gradients("maml", True, "catfish", batch=two_tasks)
    assert_same(got, want)


def test_recomputed_anil_matches_finite_differences(batch16):
    """The fault's own case: ANIL's backbone gradients through the support features."""
    learner, got = meta_gradients("anil", True, batch=batch16)
    backbone_norm = np.sqrt(sum(np.sum(g ** 2) for g in got[:-2]))
    assert backbone_norm > 1e-3  # the backbone does get a meta-gradient
    differences = FiniteDifferences(learner, batch16)
    for seed in range(2):
        _, _, error = differences.directional(got, seed)
        assert error < 1e-6


def test_recompute_refuses_a_loss_that_captures_a_float_tensor():
    weights = [tf.constant([1.0, 2.0], tf.float64)]
    scale = tf.constant(3.0, tf.float64)

    def captured(current):
        return tf.reduce_sum(scale * current[0] ** 2)

    with pytest.raises(ValueError, match="captures 1 floating-point tensor"):
        inner_loop.adapt(captured, weights, 0.1, 2, recompute=True)

    # The same loss with the tensor passed through `inputs`: exact, and the
    # gradient reaches the tensor.
    def explicit(current, factor):
        return tf.reduce_sum(factor * current[0] ** 2)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(scale)
        stored = inner_loop.adapt(explicit, weights, 0.1, 2, inputs=(scale,))
        recomputed = inner_loop.adapt(explicit, weights, 0.1, 2, recompute=True,
                                      inputs=(scale,))
    # w' = w (1 - 0.2 s)^2, so dw'/ds = -0.4 w (1 - 0.2 s).
    np.testing.assert_allclose(recomputed[0], stored[0], rtol=1e-15)
    want = np.sum(-0.4 * np.array([1.0, 2.0]) * (1 - 0.2 * 3.0))
    np.testing.assert_allclose(tape.gradient(recomputed[0], scale), want, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(stored[0], scale), want, rtol=1e-12)
