"""The meta-training loop: distributed meta-steps, validation, checkpoints, summaries."""

import math
import sys
import time

import keras
import tensorflow as tf

from mgaug_tf.training import checkpoints as checkpoints_lib
from mgaug_tf.training import inputs
from mgaug_tf.training import summaries as summaries_lib


class NonFiniteError(RuntimeError):
    """The meta-loss or the weights became NaN/Inf; training stopped without saving."""

    def __init__(self, step, what, last_checkpoint):
        self.step, self.last_checkpoint = step, last_checkpoint
        if last_checkpoint:
            advice = (f"The last good checkpoint, {last_checkpoint}, is intact. Resume from it "
                      "with a lower outer or inner learning rate.")
        else:
            advice = ("No checkpoint had been written yet, so there is nothing to resume from: "
                      "start again with a lower outer or inner learning rate.")
        super().__init__(f"{what} at step {step}; training stopped. {advice}")


class Progress:
    """The training progress bar (`keras.utils.Progbar`) and messages between its lines.

    The bar counts the meta-steps of this session (a resumed run's bar
    starts at 0 of the steps left, so its ETA is right) and is first drawn
    after the second, so that its ETA leaves out the graph build of the
    first; messages say the absolute step. On a terminal the bar is redrawn twice a second, in a log
    file every 30 s.

    Args:
        steps: Meta-steps this session will run.
        enabled: False makes every call a no-op (processes other than the chief).
    """

    def __init__(self, steps, enabled=True):
        self.enabled = enabled
        self._bar = None
        if enabled and steps > 0:
            interactive = bool(getattr(sys.stdout, "isatty", lambda: False)())
            self._bar = keras.utils.Progbar(steps, interval=0.5 if interactive else 30.0,
                                            stateful_metrics=["loss", "accuracy",
                                                              "loss_before", "subnet_loss"])
        self._open_line = False

    def update(self, done, values):
        """Shows `done` steps of this session and the latest `values` (`{name: float}`).

        The first step of a session also builds the meta-step graph, so an
        ETA drawn then would spread that build over every step left (minutes
        instead of seconds). Its update is recorded without drawing: Keras's
        bar times the steps after its first, and the first line shown (after
        step 2) has an ETA from the steps' own pace. The build time is the
        trainer's own message.
        """
        if self._bar is None:
            return
        first = done == 1 and self._bar.target > 1
        shown = self._bar.verbose
        self._bar.verbose = 0 if first else shown  # verbose 0 records without printing
        try:
            self._bar.update(done, list(values.items()))
        finally:
            self._bar.verbose = shown
        self._open_line = not first and done < self._bar.target

    def message(self, text):
        """Prints `text` on its own line."""
        if not self.enabled:
            return
        print(("\n" if self._open_line else "") + text, flush=True)
        self._open_line = False


def _weights_are_finite(learner):
    return all(bool(tf.reduce_all(tf.math.is_finite(variable)))
               for variable in learner.variables if tf.as_dtype(variable.dtype).is_floating)


def make_distributed_train_step(learner, strategy):
    """A `tf.function` running one meta-step on every replica.

    Each replica runs the learner's `train_step` on its slice of the
    meta-batch: it sums its tasks' meta-gradients and the optimizer
    all-reduces them with SUM (Keras's TF optimizer), which is the
    single-device meta-gradient of the whole meta-batch. The learner's logs
    are per-replica means over that step's tasks; their mean over replicas
    is the mean over the meta-batch.

    Returns:
        `train_step(iterator) -> {log name: scalar tensor}`.
    """

    def replica_step(batch):
        learner.reset_metrics()  # per-step values rather than running means
        return learner.train_step(batch)

    # No autograph (here and in evaluation and export): the learners need no
    # graph control flow, tracing is faster, and autograph re-reads the source
    # files, which goes wrong when they are edited while a run is going.
    @tf.function(autograph=False)
    def train_step(iterator):
        logs = strategy.run(replica_step, args=(next(iterator),))
        return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in logs.items()}

    return train_step


class _Averages:
    """Running means of the logs between two summaries."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, logs):
        for name, value in logs.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1

    def pop(self):
        means = {name: total / max(self.count, 1) for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


class MetaTrainer:
    """Trains a learner for a number of meta-steps, resuming from model_dir.

    Args:
        learner: A built, compiled `MetaLearner` created in `strategy.scope()`.
        strategy: Its `tf.distribute.Strategy`.
        train_spec: `inputs.EpisodeSpec` of the training split.
        meta_batch_size: Tasks per meta-step over all replicas.
        checkpoints: `checkpoints.RunCheckpoints` holding the learner and
            its optimizer.
        summaries: `summaries.RunSummaries`.
        validator: Optional callable returning an `EvaluationResult` of the
            validation split (best checkpoint by its mean accuracy, or for a
            regression learner its lowest mean squared error).
        eval_every: Validation interval in meta-steps.
        checkpoint_every: Checkpoint interval in meta-steps (a checkpoint is
            also written after the last step).
        summary_every: Summary interval in meta-steps.
        show_progress: Draw the progress bar (the chief only).
    """

    def __init__(self, learner, strategy, train_spec, meta_batch_size, checkpoints, summaries,
                 validator=None, eval_every=500, checkpoint_every=500, summary_every=10,
                 show_progress=True):
        self.learner = learner
        self.strategy = strategy
        self.train_spec = train_spec
        self.meta_batch_size = meta_batch_size
        self.checkpoints = checkpoints
        self.summaries = summaries
        self.validator = validator
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.summary_every = summary_every
        self.show_progress = show_progress
        self._validated = False  # the first validation builds the evaluation graph
        self._train_step = make_distributed_train_step(learner, strategy)
        self.train_iterator = None  # the last `train` call's input iterator (see `train`)

    def resume(self):
        """Restores the latest checkpoint if there is one; returns the step to start at."""
        path = self.checkpoints.path(checkpoints_lib.LATEST)
        return self.checkpoints.restore(path) if path else 0

    def train(self, train_steps):
        """Runs meta-steps until `train_steps` are done.

        Returns:
            The averaged logs of the last summary interval (empty when the
            run had already finished).

        Raises:
            NonFiniteError: The meta-loss or the weights became NaN/Inf (the
                weights are checked before every save, so no checkpoint ever
                holds them).
            CorruptDataError, DataNotFoundError: An image of the training or
                validation split could not be read inside the input pipeline
                (one line naming the file). Caveat: once an input pipeline
                has failed this way, TensorFlow 2.21 can block forever when
                its iterator is destroyed, which would keep the process from
                exiting; a program that catches this error should end with
                `os._exit` rather than a normal interpreter exit, as
                `mgaug-train` does.

        The training iterator stays alive after this returns, as
        `self.train_iterator`: destroying it blocks in TensorFlow 2.21 (its
        destructor waits for a tf.data worker thread), even after a clean
        run. `mgaug-train` keeps the trainer until it ends the process with
        `os._exit`, so the wait never happens; a script that
        does not need the trainer any more can drop it (`del
        trainer.train_iterator`) and pay the wait then.
        """
        step = self.resume()
        progress = Progress(train_steps - step, enabled=self.show_progress)
        if step >= train_steps:
            progress.message(f"model_dir already holds step {step} >= train_steps="
                             f"{train_steps}; nothing to train.")
            return {}
        if step:
            progress.message(f"Resuming from step {step} ({self.checkpoints.path()}).")
        iterator = iter(inputs.distributed_meta_batches(self.strategy, self.train_spec,
                                                        self.meta_batch_size, first_step=step))
        self.train_iterator = iterator  # see above: its teardown is slow
        averages, timings, last_logs = _Averages(), _Averages(), {}
        started = step
        while step < train_steps:
            if step == started:
                progress.message("Building the meta-step graph (the first step traces and "
                                 "compiles it; minutes for large models)...")
            start = time.perf_counter()
            with inputs.data_errors_reported():
                logs = {name: float(value) for name, value in self._train_step(iterator).items()}
            seconds = time.perf_counter() - start
            if step == started:
                progress.message(f"Meta-step graph built; the first step took {seconds:.1f} s.")
            step += 1
            if not math.isfinite(logs["loss"]):
                raise NonFiniteError(step, f"The meta-loss became {logs['loss']}",
                                     self.checkpoints.path(checkpoints_lib.LATEST))
            averages.add(logs)
            if step > started + 1:  # the first step after a start includes tracing
                timings.add({"perf/step_time_s": seconds,
                             "perf/tasks_per_s": self.meta_batch_size / seconds})
            # Regression learners log no accuracy; they log loss_before instead.
            shown = {name: logs[name] for name in ("loss", "accuracy", "loss_before",
                                                   "subnet_loss") if name in logs}
            progress.update(step - started, shown)
            if step % self.summary_every == 0 or step == train_steps:
                last_logs = averages.pop()
                extra = summaries_lib.learning_rates(self.learner, self.learner.optimizer)
                extra.update(timings.pop())
                self.summaries.train(step, last_logs, extra)
            if self.validator is not None and (step % self.eval_every == 0
                                               or step == train_steps):
                self._validate(step, progress)
            if step % self.checkpoint_every == 0 or step == train_steps:
                self._save(step)
        self.summaries.flush()
        return last_logs

    def _check_weights(self, step):
        # The loss of step s is computed before its update, so a NaN update
        # would only show in the next loss: check the weights themselves.
        if not _weights_are_finite(self.learner):
            raise NonFiniteError(step, "The weights became NaN/Inf",
                                 self.checkpoints.path(checkpoints_lib.LATEST))

    def _save(self, step):
        self._check_weights(step)
        self.checkpoints.save(step)

    def _validate(self, step, progress):
        if not self._validated:
            progress.message(f"step {step}: validating (the first validation also builds the "
                             "evaluation graph)...")
            self._validated = True
        result = self.validator()
        self.summaries.validation(step, result)
        improved = self.checkpoints.improves(result.metric)
        if improved:
            self._check_weights(step)
            self.checkpoints.save_best(step, result.metric)
        progress.message(f"step {step}: validation {result.summary()}"
                         + (" (best so far)" if improved else "")
                         + (f", {result.seconds:.1f} s" if result.seconds else ""))
