"""The regression objective of the learners: exact losses, logs, refusals, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError
from mgaug_tf.episodes import Task
from mgaug_tf.learners.base import mean_squared_error
from tests.augment import invariants
from tests.learners.any_models import dtype_policy


def linear_network(inputs=3, outputs=2, seed=0, dtype="float64"):
    keras.utils.set_random_seed(seed)
    with dtype_policy(dtype):
        return keras.Sequential([keras.Input((inputs,), dtype=dtype), keras.layers.Dense(outputs)])


def regression_batch(seed=0, tasks=2, support=5, query=4, inputs=3, outputs=2,
                     dtype="float64"):
    rng = np.random.default_rng(seed)
    return ((rng.normal(size=(tasks, support, inputs)).astype(dtype),
             rng.normal(size=(tasks, support, outputs)).astype(dtype),
             rng.normal(size=(tasks, query, inputs)).astype(dtype)),
            rng.normal(size=(tasks, query, outputs)).astype(dtype))


def test_mean_squared_error_is_the_mean_over_every_entry():
    rng = np.random.default_rng(1)
    targets, predictions = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    assert float(mean_squared_error(targets, tf.constant(predictions))) == pytest.approx(
        np.mean((predictions - targets) ** 2), rel=1e-14)
    # 16-bit outputs: the loss is computed (and returned) in float32.
    half = mean_squared_error(targets.astype("float16"), tf.constant(predictions, tf.float16))
    assert half.dtype == tf.float32
    with pytest.raises(ValueError, match=r"targets have shape \(6,\) but the network predicts "
                                         r"shape \(6, 1\)"):
        mean_squared_error(tf.zeros([6]), tf.zeros([6, 1]))


def test_maml_regression_query_loss_equals_numpy_closed_form():
    """One inner SGD step on a linear network: the adapted weights and the query
    MSE in closed form (float64), against the learner's."""
    network = linear_network()
    learner = mg.MAML(network, None, objective="regression", inner_lr=0.3, inner_steps=1)
    (support_x, support_y, query_x), query_y = regression_batch()
    learner.build((3,))
    kernel, bias = (np.asarray(v) for v in network.trainable_variables)
    outcome = learner.task_outcome(Task(support_x[0], support_y[0], query_x[0], query_y[0]))
    residual = support_x[0] @ kernel + bias - support_y[0]
    scale = 2.0 / residual.size  # d mean(r^2) / d r
    kernel_1 = kernel - 0.3 * scale * support_x[0].T @ residual
    bias_1 = bias - 0.3 * scale * residual.sum(axis=0)
    expected = np.mean((query_x[0] @ kernel_1 + bias_1 - query_y[0]) ** 2)
    assert float(outcome.query_loss) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(outcome.query_logits, query_x[0] @ kernel_1 + bias_1, rtol=1e-12)


@pytest.mark.parametrize("kind", [mg.MAML, mg.FOMAML, mg.ANIL, mg.MetaSGD])
def test_regression_learners_log_losses_and_no_accuracy(kind):
    network = linear_network(dtype="float32")
    learner = kind(network, None, objective="regression", inner_steps=1,
                   log_before_adaptation=True)
    learner.compile(keras.optimizers.SGD(0.01))
    batch = regression_batch(dtype="float32")
    history = learner.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2,
                          verbose=0)
    assert sorted(history.history) == ["full_grad_norm", "loss", "loss_before"]
    assert learner.example_shape == (3,)
    assert sorted(learner.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0,
                                   return_dict=True)) == ["loss"]
    (support_x, support_y, query_x), _ = batch
    assert learner.adapt_and_predict(support_x[0], support_y[0], query_x[0]).shape == (4, 2)
    assert learner((support_x, support_y, query_x)).shape == (2, 4, 2)


def test_loss_before_is_the_unadapted_query_mse():
    network = linear_network(dtype="float64")
    learner = mg.MAML(network, None, objective="regression", inner_steps=1,
                      log_before_adaptation=True)
    batch = regression_batch()
    _, logs, _ = learner._meta_gradients_and_logs(batch)
    kernel, bias = (np.asarray(v) for v in network.trainable_variables)
    (_, _, query_x), query_y = batch
    expected = np.mean([np.mean((query_x[t] @ kernel + bias - query_y[t]) ** 2)
                        for t in range(2)])
    assert float(logs["loss_before"]) == pytest.approx(expected, rel=1e-6)


def test_the_unadapted_query_pass_runs_only_when_logged(monkeypatch):
    learner = mg.MAML(linear_network(dtype="float64"), None, objective="regression",
                      inner_steps=1)
    def unexpected(weights, task):
        raise AssertionError("the query pass before adaptation ran without being logged")

    monkeypatch.setattr(learner, "_logits_before_adaptation", unexpected)
    gradients, logs, _ = learner._meta_gradients_and_logs(regression_batch())
    assert "loss_before" not in logs and all(g is not None for g in gradients)
    assert mg.MAML.from_config(learner.get_config()).log_before_adaptation is False
    logged = mg.MAML(linear_network(), None, objective="regression", inner_steps=1,
                     log_before_adaptation=True)
    assert mg.MAML.from_config(logged.get_config()).log_before_adaptation is True


def test_mgaug_regression_logs_no_subnet_accuracy():
    learner = mg.MAML(linear_network(dtype="float32"), None, objective="regression",
                      inner_steps=1,
                      augmentation=mg.MGAug("random_param", num_subnets=2, include_dense=True))
    names = learner.augmentation.metric_names(learner)
    assert "subnet_accuracy" not in names and "subnet_loss" in names
    learner.compile(keras.optimizers.SGD(0.01))
    history = learner.fit(tf.data.Dataset.from_tensors(regression_batch(dtype="float32"))
                          .repeat(), steps_per_epoch=1, verbose=0)
    assert sorted(history.history) == ["augmented_grad_norm", "full_grad_norm", "loss",
                                       "sparsity_0", "sparsity_1", "subnet_loss"]


def test_objective_and_n_way_are_checked_in_the_constructor():
    network = linear_network()
    with pytest.raises(ArgumentError, match=r"MAML: `objective` must be one of "
                                            r"\('classification', 'regression'\).*'mse'"):
        mg.MAML(network, None, objective="mse")
    with pytest.raises(ArgumentError, match=r"`n_way` must be None with "
                                            r"objective='regression'.*n_way=5"):
        mg.MAML(network, 5, objective="regression")
    with pytest.raises(ArgumentError, match=r"`n_way` must be an integer >= 2.*n_way=None"):
        mg.MAML(network)


def test_protonet_refuses_regression_naming_objective():
    with pytest.raises(ArgumentError, match=r"ProtoNet: `objective` must be 'classification'"
                                            r".*class prototypes.*objective='regression'"):
        mg.ProtoNet(linear_network(), None, objective="regression")


def test_regression_episodes_are_checked():
    learner = mg.MAML(linear_network(), None, objective="regression", inner_steps=1)
    (support_x, support_y, query_x), query_y = regression_batch()
    with pytest.raises(ValueError, match=r"support_labels of a regression batch of episodes "
                                         r"must be floating-point targets; got dtype int32"):
        learner.compute_meta_gradients(((support_x, support_y.astype("int32"), query_x),
                                        query_y))
    with pytest.raises(ValueError, match=r"query_labels of a batch of episodes must have rank 3 "
                                         r"\(regression targets \[B, S, D\]\)"):
        learner.compute_meta_gradients(((support_x, support_y, query_x), query_y[..., 0]))
    with pytest.raises(ValueError, match=r"targets have shape \(5, 3\) but the network "
                                         r"predicts shape \(5, 2\)"):
        learner.compute_meta_gradients(((support_x, np.concatenate(
            [support_y, support_y[..., :1]], -1), query_x), np.concatenate(
            [query_y, query_y[..., :1]], -1)))


def test_get_config_round_trips_the_objective(tmp_path):
    learner = mg.MAML(linear_network(dtype="float32"), None, objective="regression",
                      inner_steps=2)
    learner.build((3,))
    path = str(tmp_path / "regression.keras")
    learner.save(path)
    loaded = mg.load_model(path)
    assert (loaded.objective, loaded.n_way, loaded.example_shape) == ("regression", None, (3,))
    (support_x, support_y, query_x), _ = regression_batch(dtype="float32")
    np.testing.assert_array_equal(
        loaded.adapt_and_predict(support_x[0], support_y[0], query_x[0]),
        learner.adapt_and_predict(support_x[0], support_y[0], query_x[0]))


def test_mgaug_pruned_entries_stay_frozen_under_the_regression_loss():
    learner = mg.MAML(linear_network(dtype="float64"), None, objective="regression",
                      inner_steps=2,
                      augmentation=mg.MGAug("catfish", keep_range=(0.5, 0.5), include_dense=True))
    learner.build((3,))
    task = learner._split_tasks(regression_batch())[0]
    masked = invariants.assert_pruned_entries_stay_frozen(learner, task, inner_steps=2)
    assert [v.path for v in masked] == [learner.network.layers[-1].kernel.path]
