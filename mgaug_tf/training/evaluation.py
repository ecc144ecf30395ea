"""Few-shot evaluation over fixed episodes: per-episode accuracy (or MSE), mean and 95 % CI."""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from mgaug_tf.learners.base import accuracy, cross_entropy, mean_squared_error
from mgaug_tf.training import inputs


def confidence_interval_95(values):
    """Half-width of the normal 95 % confidence interval of the mean: 1.96 * std / sqrt(n).

    `std` is the population standard deviation (numpy's default), as in the
    reference MAML/ProtoNet evaluation code.
    """
    values = np.asarray(values, np.float64)
    return float(1.96 * values.std() / math.sqrt(len(values)))


@dataclasses.dataclass
class EvaluationResult:
    """Per-episode results of one evaluation.

    Attributes:
        split: The split evaluated.
        accuracies: float64 `[num_episodes]`, query accuracy of each episode
            in episode-id order; None for regression.
        losses: float64 `[num_episodes]`, mean query loss of each episode
            (regression: the mean squared error over its query targets).
        seconds: Wall time of the evaluation.
        objective: `"classification"` (the result's metric is the accuracy,
            higher is better) or `"regression"` (the MSE, lower is better).
    """

    split: str
    accuracies: np.ndarray | None
    losses: np.ndarray
    seconds: float = 0.0
    objective: str = "classification"

    @property
    def regression(self):
        return self.objective == "regression"

    @property
    def num_episodes(self):
        return len(self.losses)

    @property
    def mean_accuracy(self):
        """Mean query accuracy; None for regression."""
        return None if self.regression else float(np.mean(self.accuracies))

    @property
    def metric_name(self):
        """`"accuracy"` or (regression) `"mse"`."""
        return "mse" if self.regression else "accuracy"

    @property
    def metric(self):
        """The mean of the objective's metric: accuracy, or (regression) MSE."""
        return self.mean_loss if self.regression else self.mean_accuracy

    @property
    def ci95(self):
        """Half-width of the 95 % interval of `metric` over the episodes."""
        return confidence_interval_95(self.losses if self.regression else self.accuracies)

    @property
    def mean_loss(self):
        return float(np.mean(self.losses))

    def summary(self):
        """One line: `test: 61.23 % +- 0.84 % (600 episodes)`, or `test: MSE 0.5120 +- ...`.

        The MSE and its CI have 4 decimals, as in `mgaug-report`'s table and lines.
        """
        if self.regression:
            return (f"{self.split}: MSE {self.mean_loss:.4f} +- {self.ci95:.4f} "
                    f"(95 % CI, {self.num_episodes} tasks)")
        return (f"{self.split}: {100 * self.mean_accuracy:.2f} % +- {100 * self.ci95:.2f} % "
                f"(95 % CI, {self.num_episodes} episodes)")

    def to_json(self, **extra):
        """The result as a JSON-ready dict, with `extra` fields merged in.

        Regression results hold `mean_mse`, `ci95` (of the MSE), `std_mse`
        and `per_episode_mse` instead of the accuracy fields.
        """
        fields = {"split": self.split, "num_episodes": self.num_episodes,
                  "objective": self.objective, "ci95": self.ci95, "mean_loss": self.mean_loss,
                  "seconds": round(self.seconds, 3)}
        if self.regression:
            fields.update(mean_mse=self.mean_loss, std_mse=float(np.std(self.losses)),
                          per_episode_mse=[float(value) for value in self.losses])
        else:
            fields.update(mean_accuracy=self.mean_accuracy,
                          std_accuracy=float(np.std(self.accuracies)),
                          per_episode_accuracy=[float(value) for value in self.accuracies])
        fields.update(extra)
        return fields


class EpisodeEvaluator:
    """Evaluates a learner on the first episodes of a fixed-seed episode sequence.

    Each replica adapts to its episodes with the learner's evaluation
    behaviour (`adapt_and_predict`: `eval_inner_steps`, the test-time batch
    norm of `bn_mode`) and the per-episode accuracies (regression learners:
    the MSE) are gathered in episode order, so any number of replicas gives the same numbers. One
    evaluator serves every split of the same episode shape (one trace).

    Args:
        learner: A built `MetaLearner` (created under `strategy.scope()`).
        strategy: The `tf.distribute.Strategy` the learner lives in.
        tasks_per_replica: Episodes each replica adapts to per call.
    """

    def __init__(self, learner, strategy, tasks_per_replica=1):
        self.learner = learner
        self.strategy = strategy
        self.tasks_per_step = tasks_per_replica * strategy.num_replicas_in_sync
        self.objective = learner.objective
        self._regression = self.objective == "regression"
        # No autograph: see trainer.make_distributed_train_step.
        self._step = tf.function(self._distributed_step, autograph=False)

    def _replica_step(self, batch):
        (support_images, support_labels, query_images), query_labels = batch
        accuracies, losses = [], []
        for task in range(support_images.shape[0]):
            outputs = self.learner.adapt_and_predict(support_images[task], support_labels[task],
                                                     query_images[task])
            if self._regression:
                losses.append(mean_squared_error(query_labels[task], outputs))
                accuracies.append(tf.zeros([]))  # no accuracy: dropped by __call__
            else:
                accuracies.append(accuracy(query_labels[task], outputs))
                losses.append(cross_entropy(query_labels[task], tf.cast(outputs, tf.float32)))
        return tf.stack(accuracies), tf.stack(losses)

    def _distributed_step(self, iterator):
        accuracies, losses = self.strategy.run(self._replica_step, args=(next(iterator),))
        return (self.strategy.gather(accuracies, axis=0),
                self.strategy.gather(losses, axis=0))

    def __call__(self, spec, num_episodes):
        """Evaluates episodes 0 .. num_episodes - 1 of `spec` (an `inputs.EpisodeSpec`).

        Returns:
            An `EvaluationResult`.
        """
        start = time.perf_counter()
        num_steps = -(-num_episodes // self.tasks_per_step)  # whole steps; extras dropped
        iterator = iter(inputs.distributed_meta_batches(
            self.strategy, spec, self.tasks_per_step, training=False, num_steps=num_steps))
        accuracies, losses = [], []
        for _ in range(num_steps):
            with inputs.data_errors_reported():
                step_accuracies, step_losses = self._step(iterator)
            accuracies.append(step_accuracies.numpy())
            losses.append(step_losses.numpy())
        return EvaluationResult(
            spec.split.split,
            None if self._regression
            else np.concatenate(accuracies)[:num_episodes].astype(np.float64),
            np.concatenate(losses)[:num_episodes].astype(np.float64),
            time.perf_counter() - start, objective=self.objective)
