"""TensorBoard summaries of a run: `model_dir/train`, `model_dir/val`, `model_dir/eval`.

Train and validation share tag names (`loss`, `accuracy`) so TensorBoard
overlays them. Tags written:

* train: `loss` / `accuracy` (full network's query loss and accuracy after
  adaptation; regression: the loss is the MSE, and there is no accuracy),
  `accuracy_before_adaptation` (regression: `loss_before_adaptation`; with
  `--log_before_adaptation`), `subnet/loss`,
  `subnet/accuracy` (MGAug sub-networks), `meta_gradient_norm/full`,
  `meta_gradient_norm/augmented`, `sparsity/<strategy>/subnet_<k>`,
  `learning_rate/outer`, `learning_rate/inner` (Meta-SGD: `.../mean`,
  `.../min`, `.../max` and a histogram), `perf/step_time_s`,
  `perf/tasks_per_s`, and the hyper-parameters (HParams plugin and a
  `flags` text summary).
* val: `loss`, `accuracy`, `accuracy_ci95` (regression: `loss`, `loss_ci95`).
* eval: `accuracy`, `accuracy_ci95` (regression: `mse`, `mse_ci95`), tagged
  per split, of final evaluations.
"""

import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

# Learner log name -> TensorBoard tag (sparsity_k is added per MGAug strategy).
TRAIN_TAGS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "accuracy_before": "accuracy_before_adaptation",
    "loss_before": "loss_before_adaptation",
    "subnet_loss": "subnet/loss",
    "subnet_accuracy": "subnet/accuracy",
    "full_grad_norm": "meta_gradient_norm/full",
    "augmented_grad_norm": "meta_gradient_norm/augmented",
}


def train_tag(name, mgaug_strategy=None):
    """The TensorBoard tag of a learner log `name`."""
    if name.startswith("sparsity_"):
        return f"sparsity/{mgaug_strategy}/subnet_{name[len('sparsity_'):]}"
    return TRAIN_TAGS.get(name, name)


def learning_rates(learner, optimizer):
    """Scalar and histogram learning-rate summaries: `{tag: value}`.

    The outer rate always; the inner rate of gradient-based learners: a
    constant, or Meta-SGD's learned per-entry rates (mean/min/max, plus the
    full tensor under `learning_rate/inner` for a histogram).
    """
    values = {"learning_rate/outer": float(np.asarray(optimizer.learning_rate))}
    variables = getattr(learner, "inner_learning_rate_variables", None)
    if variables:
        flat = np.concatenate([np.asarray(variable).reshape(-1) for variable in variables])
        values.update({"learning_rate/inner/mean": float(flat.mean()),
                       "learning_rate/inner/min": float(flat.min()),
                       "learning_rate/inner/max": float(flat.max()),
                       "learning_rate/inner": flat})
    elif getattr(learner, "uses_inner_loop", False):
        values["learning_rate/inner"] = float(learner.inner_lr)
    return values


class RunSummaries:
    """Summary writers of one run; no-ops on processes other than the chief.

    Args:
        model_dir: The run's folder.
        enabled: Write files (the chief) or not.
        mgaug_strategy: MGAug strategy name, for the sparsity tags.
    """

    def __init__(self, model_dir, enabled=True, mgaug_strategy=None):
        self.enabled = enabled
        self.mgaug_strategy = mgaug_strategy
        self._writers = {}
        self._model_dir = model_dir

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = (tf.summary.create_file_writer(os.path.join(self._model_dir,
                                                                              name))
                                   if self.enabled else tf.summary.create_noop_writer())
        return self._writers[name]

    def _scalars(self, writer_name, step, values):
        with self._writer(writer_name).as_default(step=step):
            for tag, value in values.items():
                if np.ndim(value):
                    tf.summary.histogram(tag, value)
                else:
                    tf.summary.scalar(tag, float(value))

    def hyperparameters(self, hparams, flagfile_text):
        """Records the run's hyper-parameters (HParams plugin) and its flags (text)."""
        with self._writer("train").as_default(step=0):
            if self.enabled:
                hparams_api.hparams(hparams)
            tf.summary.text("flags", "```\n" + flagfile_text + "\n```")

    def train(self, step, logs, extra=None):
        """Writes averaged learner logs (`{name: value}`) and `extra` tags."""
        values = {train_tag(name, self.mgaug_strategy): value for name, value in logs.items()}
        values.update(extra or {})
        self._scalars("train", step, values)

    def validation(self, step, result):
        """Writes an `EvaluationResult` of the validation split."""
        if result.regression:
            self._scalars("val", step, {"loss": result.mean_loss, "loss_ci95": result.ci95})
            return
        self._scalars("val", step, {"loss": result.mean_loss, "accuracy": result.mean_accuracy,
                                    "accuracy_ci95": result.ci95})

    def evaluation(self, step, result):
        """Writes a final `EvaluationResult` (per split)."""
        name = result.metric_name
        self._scalars("eval", step, {f"{result.split}/{name}": result.metric,
                                     f"{result.split}/{name}_ci95": result.ci95})

    def flush(self):
        for writer in self._writers.values():
            writer.flush()
