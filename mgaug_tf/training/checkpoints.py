"""The run's checkpoints: the latest few (to resume) and the best by validation metric.

The validation metric is the accuracy (higher is better), or for a
regression learner the mean squared error (lower is better). A checkpoint
holds the learner (weights, batch-norm statistics, `meta_step` which seeds
MGAug's masks), the optimizer (slots, iteration count), the number of
completed meta-steps and the best validation metric so far. The
training episodes need no saved state: meta-step s always reads episodes
s*B .. s*B + B - 1 (`training.inputs`). Saving is atomic (TensorFlow writes
the data, then renames the index), so a run killed at any point resumes from
its last complete checkpoint.

Under multi-worker training every worker must take part in a save; only the
chief's files are kept (other workers write to a scratch folder inside
model_dir and delete it), and every worker restores from the chief's files,
so model_dir must be on storage all workers see.
"""

import os
import shutil

import tensorflow as tf

LATEST = "latest"
BEST = "best"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the model being built."""


def _model_objects(learner):
    # Keras 3 layers kept in plain Python lists (Conv4's blocks) are invisible
    # to tf.train.Checkpoint's object graph, so their non-trainable weights
    # (batch-norm statistics) would silently go unsaved: list every variable.
    return {"learner": learner, "learner_variables": list(learner.variables)}


def restore_learner(learner, path):
    """Loads a run's learner weights from checkpoint `path` into a built `learner`.

    Example:
        >>> restore_learner(learner, "runs/demo/best/best-300")
        >>> learner.adapt_and_predict(support_images, support_labels, query_images)
    """
    tf.train.Checkpoint(**_model_objects(learner)).restore(path).expect_partial()


class RunCheckpoints:
    """Latest and best checkpoints of one run in `model_dir`.

    Args:
        model_dir: The run's folder (checkpoints at its top, the best one in
            `model_dir/best`).
        role: This process's `mgaug_tf.distribute.WorkerRole`.
        learner: The built `MetaLearner` (every variable is saved).
        optimizer: Its built optimizer.
        max_to_keep: Latest checkpoints kept.

    Attributes:
        step: int64 variable, meta-steps completed.
        regression: Whether the learner's objective is regression (the best
            checkpoint has the lowest validation MSE, else the highest
            validation accuracy).
        best_value: float64 variable, the best validation metric so far (-1
            for accuracy, +inf for MSE: none yet); saved as `best_accuracy`
            or `best_loss`.
        best_accuracy: The same variable (classification only).
    """

    def __init__(self, model_dir, role, learner, optimizer, max_to_keep=3):
        self.model_dir = model_dir
        self.role = role
        self.regression = learner.objective == "regression"
        name = "best_loss" if self.regression else "best_accuracy"
        with tf.init_scope():  # host variables, outside any strategy or function
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_value = tf.Variable(float("inf") if self.regression else -1.0,
                                          dtype=tf.float64, trainable=False, name=name)
        if not self.regression:
            self.best_accuracy = self.best_value
        # Classification runs keep the name their checkpoints always had.
        self.checkpoint = tf.train.Checkpoint(step=self.step, **{name: self.best_value},
                                              optimizer=optimizer, **_model_objects(learner))
        write_dir = model_dir if role.is_chief else os.path.join(
            model_dir, f".worker_{role.task_type}_{role.task_id}")
        self._write_dir = write_dir
        self._latest = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep,
                                                  checkpoint_name="ckpt")
        self._best = tf.train.CheckpointManager(self.checkpoint, os.path.join(write_dir, BEST),
                                                max_to_keep=1, checkpoint_name="best")

    def path(self, which=LATEST):
        """Path of the latest or best checkpoint in model_dir, or None."""
        directory = self.model_dir if which == LATEST else os.path.join(self.model_dir, BEST)
        return tf.train.latest_checkpoint(directory)

    def restore(self, path):
        """Restores everything saved at `path` (all saved objects must exist here).

        Raises:
            CheckpointError: The checkpoint does not match the model (other
                flags than the run that wrote it).
        """
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointError(f"Checkpoint {path} does not fit the model being built "
                                  f"({error}).") from None
        return int(self.step.numpy())

    def restore_model(self, which=LATEST):
        """Restores the weights only (evaluation, export); returns the checkpoint path.

        Args:
            which: `LATEST`, or `BEST` (falls back to the latest when no
                validation ever ran).

        Raises:
            CheckpointError: model_dir holds no checkpoint.
        """
        path = self.path(which) or self.path(LATEST)
        if path is None:
            raise CheckpointError(f"No checkpoint in {self.model_dir}; train first.")
        self.restore(path)
        return path

    def save(self, step):
        """Saves the latest checkpoint after `step` completed meta-steps."""
        self.step.assign(step)
        self._latest.save(checkpoint_number=step)
        self._drop_scratch()

    def improves(self, value):
        """Whether validation metric `value` beats the best so far (higher accuracy, lower MSE)."""
        best = float(self.best_value.numpy())
        return value < best if self.regression else value > best

    def save_best(self, step, value):
        """Records a new best validation metric and saves it as the best checkpoint."""
        self.step.assign(step)
        self.best_value.assign(value)
        self._best.save(checkpoint_number=step)
        self._drop_scratch()

    def _drop_scratch(self):
        if not self.role.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
