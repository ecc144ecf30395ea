"""Learner behaviour: fit/evaluate, inference, ProtoNet logits, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from tests.conftest import make_episode_batch, traced_nodes

LEARNERS = {
    "maml": lambda: mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, inner_steps=2),
    "fomaml": lambda: mg.FOMAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                                inner_steps=2),
    "anil": lambda: mg.ANIL(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, inner_steps=2),
    "metasgd": lambda: mg.MetaSGD(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3,
                                  inner_steps=2),
    "protonet": lambda: mg.ProtoNet(mg.Conv4(filters=4), 3),
}


def episode_dataset(seed=0, **kwargs):
    batches = [make_episode_batch(seed + i, **kwargs) for i in range(3)]
    return tf.data.Dataset.from_tensor_slices(
        tf.nest.map_structure(lambda *parts: np.stack(parts), *batches)).repeat()


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_fit_traces_train_step_once_and_learns(name):
    keras.utils.set_random_seed(0)
    learner = LEARNERS[name]()
    learner.compile(optimizer=keras.optimizers.Adam(1e-2))
    traces = []
    original_train_step = learner.train_step

    def counting_train_step(data):
        traces.append(1)
        return original_train_step(data)

    learner.train_step = counting_train_step
    history = learner.fit(episode_dataset(), steps_per_epoch=6, epochs=3, verbose=0)
    assert len(traces) == 1
    # full_grad_norm: every run logs its per-task meta-gradient norm, as MGAug
    # runs do; the unadapted network's accuracy only when asked for.
    assert set(history.history) == {"loss", "accuracy", "full_grad_norm"}
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(norm > 0 for norm in history.history["full_grad_norm"])
    results = learner.evaluate(episode_dataset(seed=10), steps=2, verbose=0, return_dict=True)
    assert set(results) == {"loss", "accuracy"} and 0.0 <= results["accuracy"] <= 1.0


def test_meta_batch_gradient_is_sum_of_task_gradients():
    keras.utils.set_random_seed(0)
    learner = LEARNERS["maml"]()
    batch = make_episode_batch(3, tasks=2)
    _, total = learner.compute_meta_gradients(batch)
    (si, sl, qi), ql = batch
    singles = [learner.compute_meta_gradients(((si[i:i + 1], sl[i:i + 1], qi[i:i + 1]),
                                               ql[i:i + 1]))[1] for i in range(2)]
    for got, first, second in zip(total, *singles):
        np.testing.assert_allclose(got, first + second, rtol=1e-5, atol=1e-7)
    mean_learner = mg.MAML(learner.network, 3, inner_steps=2, task_reduction="mean")
    _, mean = mean_learner.compute_meta_gradients(batch)
    for got, summed in zip(mean, total):
        np.testing.assert_allclose(got, summed / 2, rtol=1e-5, atol=1e-7)


def test_protonet_logits_are_negative_squared_distances_to_prototypes():
    n_way, shots, dims = 3, 2, 4
    encoder = keras.Sequential([keras.layers.Flatten()])
    learner = mg.ProtoNet(encoder, n_way)
    rng = np.random.default_rng(0)
    support = rng.normal(size=(n_way * shots, dims, 1, 1)).astype("float32")
    labels = np.array([2, 0, 1, 0, 2, 1], dtype="int32")
    queries = rng.normal(size=(5, dims, 1, 1)).astype("float32")
    logits = learner.adapt_and_predict(support, labels, queries).numpy()
    flat_support, flat_queries = support.reshape(-1, dims), queries.reshape(-1, dims)
    for query_index, query in enumerate(flat_queries):
        for label in range(n_way):
            prototype = flat_support[labels == label].mean(axis=0)
            expected = -np.sum((query - prototype) ** 2)
            assert logits[query_index, label] == pytest.approx(expected, rel=1e-5)


def test_transductive_and_inductive_batch_norm_differ_only_at_test():
    batch = make_episode_batch(1, tasks=1)
    (si, sl, qi), _ = batch
    keras.utils.set_random_seed(0)
    network = mg.FewShotClassifier(mg.Conv4(filters=4), 3)
    transductive = mg.MAML(network, 3, inner_steps=1)
    inductive = mg.MAML(network, 3, inner_steps=1, bn_mode="inductive")
    # Fresh moving statistics (mean 0, variance 1) differ from batch statistics.
    assert not np.allclose(transductive.adapt_and_predict(si[0], sl[0], qi[0]),
                           inductive.adapt_and_predict(si[0], sl[0], qi[0]))
    loss_t, grads_t = transductive.compute_meta_gradients(batch)
    loss_i, grads_i = inductive.compute_meta_gradients(batch)
    assert float(loss_t) == pytest.approx(float(loss_i), rel=1e-6)
    with pytest.raises(ValueError, match="bn_mode"):
        mg.MAML(network, 3, bn_mode="batch")


def test_inductive_training_updates_moving_statistics():
    keras.utils.set_random_seed(0)
    learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, inner_steps=1,
                      bn_mode="inductive")
    learner.compile("adam")
    learner.fit(episode_dataset(), steps_per_epoch=2, verbose=0)
    moving_mean = learner.network.backbone.blocks[0][1].moving_mean.numpy()
    assert np.abs(moving_mean).max() > 0


def test_functional_call_equals_ordinary_call_for_resnet12():
    keras.utils.set_random_seed(0)
    backbone = mg.ResNet12(widths=(4, 6, 8, 10))
    images = tf.random.stateless_normal([3, 20, 20, 3], seed=[0, 1])
    expected = backbone(images, training=True)
    got, _ = functional.call_with_weights(
        backbone, functional.read_values(backbone.trainable_variables),
        functional.read_values(backbone.non_trainable_variables), images, training=True)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert expected.shape == (3, 10)


def test_backbone_output_sizes():
    assert mg.Conv4().compute_output_shape((None, 84, 84, 3)) == (None, 1600)
    assert mg.Conv4().compute_output_shape((None, 28, 28, 1)) == (None, 64)
    assert mg.Conv4(pooling="avg").compute_output_shape((None, 84, 84, 3)) == (None, 64)
    resnet = mg.ResNet12()
    resnet.build((None, 84, 84, 3))
    assert resnet.count_params() == 12_433_792  # the standard ResNet-12 (no head)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_bad_episodes_raise_clear_value_errors(name):
    learner = LEARNERS[name]()
    (si, sl, qi), ql = make_episode_batch(0, tasks=1)
    with pytest.raises(ValueError, match="Support images are .* query"):
        learner.adapt_and_predict(si[0], sl[0], qi[0, :, :8])
    with pytest.raises(ValueError, match=r"support_labels must lie in \[0, 3\)"):
        learner.adapt_and_predict(si[0], sl[0] + 1, qi[0])
    with pytest.raises(ValueError, match="not N\\*K"):
        learner.adapt_and_predict(si[0, :5], sl[0, :5], qi[0])
    with pytest.raises(ValueError, match="query_labels must lie"):
        learner.compute_meta_gradients(((si, sl, qi), ql - 1))
    with pytest.raises(ValueError, match="support_images hold 6 images but support_labels hold 4"):
        learner.compute_meta_gradients(((si, sl[:, :4], qi), ql))
    with pytest.raises(ValueError, match="must have the same rank"):
        learner.compute_meta_gradients(((si[0], sl, qi), ql))
    learner.build((16, 16, 1))  # the learner's example shape is known: its rank too
    with pytest.raises(ValueError, match=r"support_images .* must have rank 5 .*\(16, 16, 1\)"):
        learner.compute_meta_gradients(((si[0], sl, qi[0]), ql))


def _conv_ops(concrete):
    """Conv2D ops in a traced function: its graph and every function it calls."""
    return sum(node.op == "Conv2D" for node in traced_nodes(concrete))


@pytest.mark.parametrize("kind", ["maml", "protonet"])
def test_meta_step_traces_the_task_computation_once(kind):
    """Tasks and sub-networks run in a graph loop: the traced step holds the same
    convolutions for 1 or 3 tasks and for K = 1 or 3 sub-networks."""
    counts = {}
    for tasks, subnets in ((1, 1), (3, 1), (3, 3)):
        keras.utils.set_random_seed(0)
        augmentation = mg.MGAug("catfish", num_subnets=subnets)
        if kind == "protonet":
            learner = mg.ProtoNet(mg.Conv4(filters=2), 3, augmentation=augmentation)
        else:
            learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=2), 3), 3, inner_steps=1,
                              augmentation=augmentation)
        learner.compile(keras.optimizers.SGD(0.1))
        batch = make_episode_batch(0, tasks=tasks)
        learner.build((16, 16, 1))
        learner.optimizer.build(learner.trainable_variables)
        counts[tasks, subnets] = _conv_ops(
            tf.function(learner.train_step).get_concrete_function(batch))
    assert counts[1, 1] > 0
    assert counts[1, 1] == counts[3, 1] == counts[3, 3], counts


def test_unrolled_loops_give_the_same_meta_gradients_and_count_every_task():
    """`unroll_loops` (for static graph analysis) traces one copy per task and
    sub-network and computes exactly what the loops compute."""
    results = {}
    for unroll in (False, True):
        keras.utils.set_random_seed(0)
        learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=2, dtype="float64"), 3), 3,
                          inner_steps=1, augmentation=mg.MGAug("catfish", num_subnets=2))
        learner.unroll_loops = unroll
        batch = make_episode_batch(0, tasks=2, dtype="float64")
        learner.build((16, 16, 1))
        step = tf.function(learner.compute_meta_gradients)
        loss, gradients = step(batch)
        results[unroll] = (float(loss), [np.asarray(g) for g in gradients],
                           _conv_ops(step.get_concrete_function(batch)))
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-12)
    for got, want in zip(results[True][1], results[False][1]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    # 2 tasks x (full network + 2 sub-networks) copies instead of one of each.
    assert results[True][2] > 2 * results[False][2]
