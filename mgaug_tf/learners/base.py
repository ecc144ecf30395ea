"""The learner base: a `keras.Model` whose `train_step` is one meta-step.

A learner owns the per-task computation (`_query_logits`: adapt on the
support set, classify the query set); everything else lives here once:
episode checks, the meta-gradient over a meta-batch, MGAug's sub-network
passes (through the `augmentation` object), metrics, `fit`/`evaluate`
integration and single-episode inference.
"""

import inspect
import warnings
from typing import TYPE_CHECKING, Any, Optional, Self, Sequence

import keras
import tensorflow as tf

from mgaug_tf import episodes as episodes_lib
from mgaug_tf import choices, functional, runtime
from mgaug_tf.checks import check_integer, check_objective
from mgaug_tf.errors import ArgumentError

if TYPE_CHECKING:
    from mgaug_tf.augment.mgaug import MGAug

BN_MODES = choices.BN_MODES

# `fit` and `evaluate` warn with this (once per learner, `{}` the learner's
# class) when `runtime.is_configured()` is False: the library reads the
# options but never sets them.
UNCONFIGURED_WARNING = (
    "{} runs its tasks and MGAug's sub-networks in graph loops that need TensorFlow's "
    "arithmetic optimizer and remapper off (Grappler options `arithmetic_optimization` and "
    "`remapping`), and they are on: without them some configurations fail inside fit with "
    "'N nodes in a cycle' or AlreadyExistsError. Call `mgaug_tf.configure_tensorflow()` once "
    "(process-wide) before training, or run inside `with mgaug_tf.runtime.tensorflow_options():`.")
TASK_REDUCTIONS = choices.TASK_REDUCTIONS
OBJECTIVES = choices.OBJECTIVES
# `shuffle`'s index among the positional arguments that `keras.Model.fit` takes after `x`.
_FIT_SHUFFLE_INDEX = list(inspect.signature(keras.Model.fit).parameters).index("shuffle") - 2


def cross_entropy(labels, logits):
    """Mean sparse softmax cross-entropy, in float32 at least (mixed precision)."""
    if logits.dtype in (tf.bfloat16, tf.float16):
        logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits))


def mean_squared_error(targets, predictions):
    """Mean squared error over every entry, in float32 at least (mixed precision).

    Args:
        targets: Real-valued targets `[M, D]` (any float dtype).
        predictions: The network's outputs, of the same shape.

    Returns:
        A scalar: mean over all M * D entries of (predictions - targets)^2.

    Raises:
        ValueError: The shapes are known when traced and differ (no
            broadcasting: a `[M, 1]` output against `[M]` targets would
            silently average an M x M table).
    """
    if predictions.dtype in (tf.bfloat16, tf.float16):
        predictions = tf.cast(predictions, tf.float32)
    targets = tf.cast(targets, predictions.dtype)
    if not tf.TensorShape(targets.shape).is_compatible_with(predictions.shape):
        raise ValueError(f"Regression targets have shape {tuple(targets.shape)} but the network "
                         f"predicts shape {tuple(predictions.shape)}; they must match "
                         "([M, D] both).")
    return tf.reduce_mean(tf.square(predictions - targets))


def loss_for(objective):
    """The per-task loss `loss(targets, outputs)` of an objective (`OBJECTIVES`).

    `cross_entropy` for `"classification"`, `mean_squared_error` for
    `"regression"`.
    """
    return {"classification": cross_entropy, "regression": mean_squared_error}[objective]


def sequential_loop(body, state, count, unroll=False, parallel_iterations=1):
    """Runs `state = body(*state)` `count` times, one iteration after the other.

    A `tf.while_loop` (the body traced once) unless `unroll`, which traces
    `count` copies in Python (same values; for graph analysis). With
    `parallel_iterations` > 1 the work of that many iterations that does not
    depend on the carried state may run at once; what the state carries is
    still computed in iteration order, so the values do not change. The state's
    first entry is the iteration index, a Python int where the loop starts
    (unrolled, the body sees Python ints; in the graph loop, int32 tensors).
    Nested loops of this kind need two Grappler rewrites off in TensorFlow
    2.21 (`mgaug_tf.runtime.configure_tensorflow`, which the caller runs).

    Returns:
        The final state.
    """
    if unroll:
        for _ in range(count):
            state = body(*state)
        return state
    start = state[0] if isinstance(state[0], int) else int(tf.get_static_value(state[0]))
    state = (tf.constant(start),) + tuple(state[1:])
    return tf.while_loop(lambda index, *_: index < start + count, body, state,
                         parallel_iterations=parallel_iterations, maximum_iterations=count)


def scale_loss(loss, loss_scale):
    """`loss * loss_scale` (in the loss's dtype), or `loss` when `loss_scale` is None."""
    return loss if loss_scale is None else loss * tf.cast(loss_scale, loss.dtype)


def unscale(values, loss_scale):
    """`values / loss_scale` elementwise (a list), or `values` when `loss_scale` is None."""
    if loss_scale is None:
        return list(values)
    return [value / tf.cast(loss_scale, value.dtype) for value in values]


def accuracy(labels, logits):
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))


class TaskOutcome(tuple):
    """`(query_loss, query_logits, new_non_trainable)` of one network on one task."""

    def __new__(cls, query_loss, query_logits, new_non_trainable=None):
        return super().__new__(cls, (query_loss, query_logits, new_non_trainable))

    query_loss = property(lambda self: self[0])
    query_logits = property(lambda self: self[1])
    new_non_trainable = property(lambda self: self[2])


class MetaLearner(keras.Model):
    """Base class of every learner (gradient-based and metric-based).

    Subclasses implement `_query_logits(weights, task, masks, training)` and
    may override `_logits_before_adaptation` with `_has_accuracy_before`.

    Args:
        network: The Keras model whose weights are meta-learned (and masked by
            MGAug): a `FewShotClassifier` for MAML-family learners, the
            encoder for ProtoNet, or any Keras 3 model of the layers listed
            in docs/models.md (`functional.check_fast_weight_layers`). Not
            modified: settings that a learner or MGAug needs differently are
            passed to its calls.
        n_way: Classes per episode, an integer >= 2 (classification); None
            for regression.
        bn_mode: `"transductive"` (batch statistics of the current batch in
            training and at test, support and query in separate passes) or
            `"inductive"` (moving statistics at test).
        task_reduction: `"sum"` (reference code: the meta-gradient is the sum
            of the tasks' query-loss gradients) or `"mean"`.
        augmentation: An `mgaug_tf.augment.MGAug` (or `None`); not modified,
            and may be shared between learners (`augmentation_settings`
            holds what it resolved for this one).
        objective: `"classification"` (int labels `[S]`, outputs `[S, n_way]`
            logits, `cross_entropy`; logs `loss` and `accuracy`) or
            `"regression"` (float targets `[S, D]`, outputs `[S, D]`,
            `mean_squared_error` over all entries; logs `loss`, and
            gradient learners with `log_before_adaptation` `loss_before`;
            needs `n_way=None`).
        parallel_tasks: How many of a meta-batch's tasks the meta-step may
            compute at once, an integer >= 1 (default 1: one after the
            other). The meta-gradient is still summed in task order, so the
            values do not change; each task in flight holds its own
            second-order graph in memory (not counted by
            `mgaug_tf.memory`'s estimate). Above 1 it pays where a task's ops
            are too small to keep every core busy (28 px Omniglot), most
            with one thread per op: `mgaug-train --intra_op_threads=1`, or
            `tf.config.threading.set_intra_op_parallelism_threads(1)` before
            the process's first TensorFlow op (docs/performance.md, "The
            small-image regime"). Under `tf.distribute`, per replica.
        **kwargs: Standard model arguments.

    Attributes:
        objective: As given.
        parallel_tasks: As given.
        example_shape: The shape of one input example (a tuple, e.g.
            `(H, W, C)` for images), set by `build`; None before.

    Raises:
        mgaug_tf.errors.ArgumentError: `n_way`, `objective`, `bn_mode` or
            `task_reduction` is out of its domain, `parallel_tasks` is not
            an integer >= 1, the network holds a layer
            the fast-weight path cannot run (argument `network`,
            `functional.check_fast_weight_layers`), or `augmentation`
            cannot serve this learner (`MGAug.check_learner`).
    """

    uses_inner_loop = False
    # Whether the inner loop's gradients pass back through the whole network
    # (False for ANIL, which adapts the last layer only): with second-order
    # meta-gradients, the outer pass then differentiates every layer twice.
    inner_loop_through_network = True
    # Trace the task and sub-network loops unrolled in Python instead of as
    # `tf.while_loop`s: same values, one traced copy per task and sub-network.
    # For graph analysis only (TF's static FLOP count does not enter loop
    # bodies: benchmarks/meta_step.py); training keeps the loops.
    unroll_loops = False

    def __init__(self, network: keras.Model, n_way: Optional[int] = None,
                 bn_mode: str = "transductive", task_reduction: str = "sum",
                 augmentation: Optional["MGAug"] = None, objective: str = "classification",
                 parallel_tasks: int = 1, **kwargs: Any) -> None:
        self._check_network(network)  # first: a network that is no Keras layer has no dtype
        kwargs.setdefault("dtype", network.dtype_policy)
        super().__init__(**kwargs)
        owner = type(self).__name__
        if bn_mode not in BN_MODES:
            raise ArgumentError("bn_mode", bn_mode, f"must be one of {BN_MODES}", owner=owner)
        if task_reduction not in TASK_REDUCTIONS:
            raise ArgumentError("task_reduction", task_reduction,
                                f"must be one of {TASK_REDUCTIONS}", owner=owner)
        check_objective(objective, n_way, owner=owner)
        self.network = network
        self.objective = objective
        self.n_way = None if n_way is None else int(n_way)
        self.example_shape = None
        self.bn_mode = bn_mode
        self.task_reduction = task_reduction
        self.parallel_tasks = int(check_integer("parallel_tasks", parallel_tasks, owner))
        self.augmentation = augmentation
        self.tasks_per_replica = None
        # What `augmentation` resolved for this learner (flatten head, keep-ratio
        # cap), kept here so that one MGAug can serve several learners.
        self.augmentation_settings = (None if augmentation is None
                                      else augmentation.check_learner(self))
        self._trackers = {}
        for name in self._metric_names():
            self._trackers[name] = keras.metrics.Mean(name=name)

    def _check_network(self, network):
        """Refuses a network the learner cannot run on fast weights (`ArgumentError`)."""
        second_order = self.uses_inner_loop and not getattr(self, "first_order", False)
        functional.check_fast_weight_layers(
            network, owner=type(self).__name__, second_order=second_order,
            twice_differentiated=second_order and self.inner_loop_through_network)

    # ----------------------------------------------------------------- build
    def build(self, input_shape: Any = None, *, example_shape: Any = None) -> None:
        """Builds the network for examples of one shape.

        Args:
            input_shape: The shape of one example (`(H, W, C)` for images,
                `(T, F)` for sequences, `(D,)` for vectors), the same with
                leading `None` batch axes (`(None, H, W, C)`), or the shapes
                of an episode batch (as Keras passes them on the first `fit`
                call; the support examples' `[B, S, ...]` gives it).
            example_shape: The shape of one example, exactly (takes
                precedence; no axis is read as a batch axis).

        Raises:
            mgaug_tf.errors.ArgumentError: (argument `input_shape`) No
                example shape of known sizes can be read from it; (argument
                `example_shape`) the network cannot be called on examples of
                this shape; (argument `network`) a layer the fast-weight path
                refuses (`functional.check_fast_weight_layers`), found once
                the network is built, or outputs the learner cannot use
                (`GradientLearner`: not `n_way` logits).
        """
        if example_shape is None:
            example_shape = self._example_shape(input_shape)
        else:
            example_shape = self._known_shape(example_shape, example_shape)
        examples = keras.KerasTensor((None,) + example_shape, dtype=self.network.compute_dtype)
        if not self.network.built:  # a network may be shared between learners
            # A symbolic call builds any model: a subclassed one without its own
            # `build` would be marked built by `build` with none of its weights made.
            self._symbolic_call(examples, build=True)
            self._check_network(self.network)  # layers created by build are seen now
        self._check_outputs(self._symbolic_call(examples))
        self.example_shape = example_shape
        # Counts meta-steps; seeds MGAug's draws, so they are stateless,
        # reproducible on resume and identical across replicas.
        self.meta_step = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                         trainable=False, name="meta_step",
                                         aggregation="only_first_replica")
        self._build_learner_weights()
        if self.augmentation is not None:
            self.augmentation.on_build(self, example_shape)
        self.built = True

    def _symbolic_call(self, examples, build=False):
        """The network's output spec on the `keras.KerasTensor` `examples`.

        `build=True` calls the network, which builds it; otherwise its
        `compute_output_spec` runs the same code without recording a call.

        Raises:
            mgaug_tf.errors.ArgumentError: (argument `example_shape`) The
                network cannot take examples of this shape.
        """
        try:
            return (self.network(examples) if build
                    else self.network.compute_output_spec(examples))
        except ArgumentError:
            # A layer's own refusal already names its argument (Conv4's
            # input_shape), which the factory maps to a config field.
            raise
        except (ValueError, TypeError) as error:
            raise ArgumentError(
                "example_shape", tuple(examples.shape[1:]),
                f"must be a shape of one example that network {self.network.name!r} "
                f"({type(self.network).__name__}) takes, but calling it on a batch "
                f"{tuple(examples.shape)} fails: {error}", owner=type(self).__name__) from error

    def _check_outputs(self, outputs):
        """Refuses a network whose output spec `outputs` does not serve this learner."""

    def _build_learner_weights(self):
        """Creates the learner's own weights (Meta-SGD's learning rates)."""

    @staticmethod
    def _known_shape(shape, given):
        """`shape` as a tuple of ints, or `ArgumentError` naming `input_shape`."""
        try:
            shape = tuple(tf.TensorShape(shape).as_list())
        except (TypeError, ValueError):
            shape = (None,)
        if not shape or None in shape:
            raise ArgumentError("input_shape", given,
                                "must give the shape of one example with known sizes (e.g. "
                                "(H, W, C) for images, (T, F) for sequences), optionally after "
                                "None batch axes, or be the shapes of an episode batch")
        return tuple(int(size) for size in shape)

    @classmethod
    def _example_shape(cls, input_shape):
        """The example shape `build` reads from `input_shape` (see there)."""
        shape = input_shape
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            # (support_images, support_labels, query_images): [B, S, *example_shape].
            return cls._known_shape(tuple(shape[0])[2:], input_shape)
        try:
            sizes = list(tf.TensorShape(shape).as_list())
        except (TypeError, ValueError):
            sizes = []
        while sizes and sizes[0] is None:
            sizes.pop(0)  # batch (and support) axes of unknown size
        return cls._known_shape(sizes if sizes else None, input_shape)

    def _ensure_built(self, examples, lead):
        """Builds for `examples`' shape after its first `lead` (batch, support) axes."""
        if not self.built:
            self.build(example_shape=tuple(examples.shape)[lead:])

    # ------------------------------------------------------- per-task hooks
    def _query_logits(self, weights, task, masks=None, training=True):
        """Adapts to `task.support_*` and returns `(query_logits, new_non_trainable)`."""
        raise NotImplementedError

    def _logits_before_adaptation(self, weights, task):
        """Query logits of the unadapted network (`None` if meaningless)."""
        return None

    def _bn_training(self, training):
        # Transductive batch norm uses batch statistics at test time as well.
        return True if self.bn_mode == "transductive" else bool(training)

    def _network_call(self, weights, images, masks=None, training=True, layer=None):
        layer = self.network if layer is None else layer
        outputs, new_non_trainable = functional.call_with_weights(
            layer, weights, functional.read_values(layer.non_trainable_variables),
            tf.cast(images, layer.compute_dtype), training=self._bn_training(training),
            masks=masks, **self._call_options(layer))
        return outputs, new_non_trainable

    def _call_options(self, layer):
        """Keyword arguments of `layer`'s call that carry this learner's settings.

        The network is shared and never modified, so the flatten head that
        MGAug resolved for this learner (`augmentation_settings`) travels
        with each call.
        """
        options = {}
        settings = self.augmentation_settings
        if layer is self.network and settings is not None and settings.flatten_head is not None:
            options["flatten_head"] = settings.flatten_head
        return options

    # ------------------------------------------------------- one task
    def task_outcome(self, task: episodes_lib.Task,
                     masks: Optional[Sequence[tf.Tensor]] = None, training: bool = True,
                     weights: Optional[Sequence[tf.Tensor]] = None) -> TaskOutcome:
        """Query loss and logits of one task for the full network or a sub-network.

        Args:
            task: An `episodes.Task`.
            masks: Masks aligned with `network.trainable_variables`, or `None`.
            training: Training or evaluation behaviour (inner steps, BN mode).
            weights: Network weights to start from; defaults to the current
                values of `network.trainable_variables` (read here, so an
                enclosing tape differentiates with respect to the variables).

        Returns:
            A `TaskOutcome`.
        """
        if weights is None:
            weights = functional.read_values(self.network.trainable_variables)
        logits, new_non_trainable = self._query_logits(weights, task, masks, training)
        return TaskOutcome(self._objective_loss(task.query_labels, logits), logits,
                           new_non_trainable)

    def _objective_loss(self, targets, outputs):
        """This learner's per-task loss (`loss_for(objective)`) of `outputs` against `targets`."""
        return loss_for(self.objective)(targets, outputs)

    def task_gradients(self, task: episodes_lib.Task, variables: Sequence[tf.Variable],
                       masks: Optional[Sequence[tf.Tensor]] = None,
                       loss_scale: Optional[tf.Tensor] = None
                       ) -> tuple[TaskOutcome, list[tf.Tensor]]:
        """Gradient of one task's query loss with respect to `variables`.

        With `loss_scale` (a scalar tensor, see `_loss_scale`) the loss is
        multiplied by it inside the tape and the gradients come out scaled.
        """
        with tf.GradientTape() as tape:
            outcome = self.task_outcome(task, masks=masks, training=True)
            objective = scale_loss(outcome.query_loss, loss_scale)
        gradients = tape.gradient(objective, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return outcome, gradients

    # ------------------------------------------------------- meta-batch
    def _checked_batch(self, data):
        """The episode batch as one `Task` of `[B, ...]` tensors, validated.

        Also builds the learner on first use and records `tasks_per_replica`.
        """
        support_images, support_labels, query_images, query_labels = (
            episodes_lib.split_episode_batch(data))
        assertions = episodes_lib.validate_episode(
            support_images, support_labels, query_images, query_labels, self.n_way,
            batched=True, objective=self.objective, example_shape=self.example_shape)
        num_tasks = tf.TensorShape(support_images.shape)[0]
        if num_tasks is None:
            raise ValueError("The number of tasks per meta-batch must be static; batch the "
                             "episode dataset with drop_remainder=True.")
        self._ensure_built(support_images, lead=2)
        self.tasks_per_replica = int(num_tasks)
        with tf.control_dependencies(assertions):
            support_labels = tf.identity(support_labels)
        return episodes_lib.Task(support_images, support_labels, query_images, query_labels)

    def _split_tasks(self, data):
        batch = self._checked_batch(data)
        return [episodes_lib.Task(*(field[i] for field in batch))
                for i in range(self.tasks_per_replica)]

    def _task_at(self, batch, index):
        """Task `index` (a Python int or a scalar int tensor) of a stacked batch."""
        return episodes_lib.Task(*(tf.gather(field, index) for field in batch))

    def _task_meta_gradients(self, task, task_index, variables, accumulated, loss_scale=None):
        """`(gradients, logs, new_non_trainable)` of one task of the meta-batch.

        The full network's meta-gradient, with MGAug's sub-networks' part added
        when augmenting; `logs` maps each name of `_metric_names()` to a scalar.
        """
        if self.augmentation is not None:
            gradients, logs, new_non_trainable = self.augmentation.task_gradients(
                self, task, task_index, variables, accumulated=accumulated,
                loss_scale=loss_scale)
        else:
            outcome, gradients = self.task_gradients(task, variables, loss_scale=loss_scale)
            # The norm MGAug logs as full_grad_norm, so runs compare.
            logs = {"loss": outcome.query_loss,
                    "full_grad_norm": tf.linalg.global_norm(gradients)}
            if self.objective == "classification":
                logs["accuracy"] = accuracy(task.query_labels, outcome.query_logits)
            new_non_trainable = outcome.new_non_trainable
        before = None
        if self._has_accuracy_before():
            before = self._logits_before_adaptation(
                functional.read_values(self.network.trainable_variables), task)
        if before is not None:
            if self.objective == "classification":
                logs["accuracy_before"] = accuracy(task.query_labels, before)
            else:
                logs["loss_before"] = self._objective_loss(task.query_labels, before)
        return gradients, logs, new_non_trainable

    def _meta_gradients_and_logs(self, data, loss_scale=None):
        """`(gradients, logs, new_statistics)` of one episode batch.

        The per-task computation (the full network and MGAug's sub-networks)
        is traced once and run in a graph loop over the meta-batch's tasks
        (`tf.while_loop`, `parallel_tasks` tasks at a time, by default one:
        then only one task's second-order graph holds memory). Each task's
        gradient is taken inside the loop body, so nothing differentiates
        through the loop; the meta-gradient is the running sum over tasks in
        task order.

        With `loss_scale`, every differentiated objective is multiplied by it
        inside its tape (mixed_float16: small float16 gradients do not flush
        to zero) and the returned gradients are scaled by it, for an
        optimizer that unscales them (`keras.optimizers.LossScaleOptimizer`).
        Logged values are never scaled.

        Returns:
            `(gradients, logs, new_statistics)`: gradients aligned with
            `trainable_variables`, the logs averaged over tasks, and (with
            `bn_mode="inductive"`) each task's new batch-norm statistics (a
            list over tasks), else `[]`.
        """
        batch = self._checked_batch(data)
        num_tasks = self.tasks_per_replica
        variables = self.trainable_variables
        names = self._metric_names()
        keep_statistics = self.bn_mode == "inductive"
        statistics_seen = []

        def body(index, totals, log_arrays, statistic_arrays):
            task = self._task_at(batch, index)
            gradients, logs, new_statistics = self._task_meta_gradients(
                task, index, variables, totals, loss_scale)
            if sorted(logs) != sorted(names):
                raise ValueError(f"{type(self).__name__}: a task logged {sorted(logs)}, but "
                                 f"the learner's metrics are {sorted(names)}.")
            totals = [total + tf.convert_to_tensor(gradient)
                      for total, gradient in zip(totals, gradients)]
            log_arrays = [array.write(index, tf.cast(logs[name], tf.float32))
                          for array, name in zip(log_arrays, names)]
            if keep_statistics and new_statistics is not None:
                statistics_seen.append(True)
                statistic_arrays = [array.write(index, statistic) for array, statistic
                                    in zip(statistic_arrays, new_statistics)]
            return index + 1, totals, log_arrays, statistic_arrays

        statistics = self.network.non_trainable_variables if keep_statistics else []
        state = (0, [tf.zeros_like(variable) for variable in variables],
                 [tf.TensorArray(tf.float32, size=num_tasks) for _ in names],
                 [tf.TensorArray(tf.as_dtype(variable.dtype), size=num_tasks)
                  for variable in statistics])
        _, totals, log_arrays, statistic_arrays = sequential_loop(
            body, state, num_tasks, unroll=self.unroll_loops,
            parallel_iterations=self.parallel_tasks)
        if self.task_reduction == "mean":
            scale = self._mean_scale(num_tasks)
            totals = [total * tf.cast(scale, total.dtype) for total in totals]
        logs = {name: tf.reduce_mean(array.stack()) for name, array in zip(names, log_arrays)}
        new_statistics = []
        if statistics_seen:
            stacked = [array.stack() for array in statistic_arrays]
            new_statistics = [[values[index] for values in stacked]
                              for index in range(num_tasks)]
        self.meta_step.assign_add(1)
        return totals, logs, new_statistics

    def _mean_scale(self, local_tasks):
        """1 / (tasks in the global meta-batch), also under tf.distribute."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return 1.0 / (local_tasks * replicas)

    def compute_meta_gradients(self, data: Any) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Meta-loss and meta-gradients of one episode batch.

        Args:
            data: `((support_images, support_labels, query_images), query_labels)`
                in the episode batch format (`mgaug_tf.episodes`).

        Returns:
            `(loss, gradients)`: the mean query loss after adaptation over the
            tasks, and gradients aligned with `self.trainable_variables`
            (MGAug's sub-network gradients included when augmenting).

        Example:
            >>> loss, grads = learner.compute_meta_gradients(batch)
            >>> optimizer.apply(grads, learner.trainable_variables)
        """
        gradients, logs, _ = self._meta_gradients_and_logs(data)
        return logs["loss"], gradients

    # ------------------------------------------------------- Keras hooks
    def compile(self, optimizer: Any = "adam", jit_compile: Any = False,
                **kwargs: Any) -> None:
        """Like `keras.Model.compile`; XLA stays off unless asked for.

        XLA's CPU compiler gets max-pooling's second derivative wrong, so the
        default is plain `tf.function`. TensorFlow's process-wide options are
        left alone: call `mgaug_tf.runtime.configure_tensorflow()` once before
        training (the graph loops need two Grappler rewrites off).
        """
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def _prepare(self, data):
        # Variables must exist before Keras traces the step: a tf.function that
        # creates variables on its first trace traces a second time.
        spec = getattr(data, "element_spec", None)
        if not self.built and spec is not None:
            # The support examples [B, S, *example_shape] give the example shape.
            self.build(example_shape=tuple(tf.nest.flatten(spec)[0].shape)[2:])
        if self.built and getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _warn_if_unconfigured(self):
        """Warns the first time (per learner) a graph-loop run meets unconfigured options.

        Called by `fit` and `evaluate`, so the warning points at their caller.
        """
        if (self.unroll_loops or getattr(self, "_warned_unconfigured", False)
                or runtime.is_configured()):
            return
        self._warned_unconfigured = True
        warnings.warn(UNCONFIGURED_WARNING.format(type(self).__name__), RuntimeWarning,
                      stacklevel=3)

    def fit(self, x: Any = None, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`keras.Model.fit`; warns once if TensorFlow is unconfigured (`UNCONFIGURED_WARNING`).

        `shuffle` defaults to False for a `tf.data.Dataset` (Keras ignores it
        there and warns; episode datasets draw their tasks at random already)
        and to Keras's True for arrays of episode batches.
        """
        self._warn_if_unconfigured()
        self._prepare(x)
        if (isinstance(x, (tf.data.Dataset, tf.distribute.DistributedDataset))
                and "shuffle" not in kwargs and len(args) <= _FIT_SHUFFLE_INDEX):
            kwargs["shuffle"] = False
        return super().fit(x, *args, **kwargs)

    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None, print_fn: Any = None,
                expand_nested: bool = True, show_trainable: bool = False,
                layer_range: Optional[Sequence[str]] = None) -> None:
        """`keras.Model.summary`, listing the network's layers by default.

        A learner's one layer is its network, so `expand_nested` defaults to
        True: each backbone layer appears with its output shape for the
        image size the learner was built for.
        """
        return super().summary(line_length=line_length, positions=positions,
                               print_fn=print_fn, expand_nested=expand_nested,
                               show_trainable=show_trainable, layer_range=layer_range)

    def evaluate(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        """`keras.Model.evaluate`, with `fit`'s warning (once per learner)."""
        self._warn_if_unconfigured()
        self._prepare(x)
        return super().evaluate(x, *args, **kwargs)

    def _metric_names(self):
        classification = self.objective == "classification"
        names = ["loss", "accuracy"] if classification else ["loss"]
        if self._has_accuracy_before():
            names.append("accuracy_before" if classification else "loss_before")
        if self.augmentation is not None:
            names += self.augmentation.metric_names(self)
        else:
            names.append("full_grad_norm")
        return names

    def _has_accuracy_before(self):
        """Whether the learner logs the unadapted network's query accuracy (or loss).

        True only for a learner that overrides `_logits_before_adaptation`.
        """
        return False

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self._trackers.values())

    def _update_trackers(self, logs):
        for name, value in logs.items():
            if name not in self._trackers:
                self._trackers[name] = keras.metrics.Mean(name=name)
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()
                if name in logs}

    def _loss_scale(self):
        """The factor `optimizer.scale_loss` multiplies losses by, or `None`.

        `compile` wraps the optimizer of a mixed_float16 learner in a
        `LossScaleOptimizer` (dynamic scale); any optimizer may also have a
        fixed `loss_scale_factor`. Either way `optimizer.apply` divides the
        gradients by the same factor, as in `keras.Model.train_step`.
        """
        optimizer = self.optimizer
        if not (isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
                or getattr(optimizer, "loss_scale_factor", None) is not None):
            return None
        return tf.cast(optimizer.scale_loss(tf.constant(1.0, tf.float32)), tf.float32)

    # No autograph (as in the trainer's, evaluator's and export's functions):
    # the learners need no graph control flow beyond their explicit
    # `tf.while_loop`s, and converting every called function's source was
    # most of `fit`'s tracing time (docs/performance.md).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data: Any) -> dict[str, Any]:
        """One meta-step, honouring Keras's training contract.

        As `keras.Model.train_step` does: the objective is scaled by the
        optimizer's loss scale inside the tape (`optimizer.scale_loss`) and
        `optimizer.apply` unscales the gradients (skipping the step and
        lowering the scale if they are not finite), then clips them
        (`clipnorm`, `clipvalue`, `global_clipnorm`), accumulates them
        (`gradient_accumulation_steps`) and updates the EMA (`use_ema`).
        Weight regularization losses (`self.losses`) are added to the
        meta-objective, once per meta-step (the logged `loss` stays the
        query loss).
        """
        loss_scale = self._loss_scale()
        gradients, logs, new_statistics = self._meta_gradients_and_logs(data, loss_scale)
        if self.losses:
            # Weight regularizers (e.g. a backbone's kernel_regularizer) count
            # once per meta-step, at theta, as Keras adds `model.losses`.
            with tf.GradientTape() as tape:
                penalty = tf.add_n([tf.cast(loss, tf.float32) for loss in self.losses])
                scaled = scale_loss(penalty, loss_scale)
            penalty_gradients = tape.gradient(scaled, self.trainable_variables)
            gradients = [g if p is None else g + tf.cast(p, g.dtype)
                         for g, p in zip(gradients, penalty_gradients)]
        self.optimizer.apply(gradients, self.trainable_variables)
        if self.bn_mode == "inductive" and new_statistics:
            # Moving statistics for inductive testing: the tasks' average.
            for index, variable in enumerate(self.network.non_trainable_variables):
                variable.assign(tf.add_n([stats[index] for stats in new_statistics])
                                / len(new_statistics))
        return self._update_trackers(logs)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data: Any) -> dict[str, Any]:
        tasks = self._split_tasks(data)
        losses, accuracies = [], []
        for task in tasks:
            outcome = self.task_outcome(task, training=False)
            losses.append(tf.cast(outcome.query_loss, tf.float32))
            if self.objective == "classification":
                accuracies.append(accuracy(task.query_labels, outcome.query_logits))
        logs = {"loss": tf.reduce_mean(tf.stack(losses))}
        if accuracies:
            logs["accuracy"] = tf.reduce_mean(tf.stack(accuracies))
        return self._update_trackers(logs)

    def call(self, inputs: Sequence[tf.Tensor], training: bool = False) -> tf.Tensor:
        """Query outputs of a batch of episodes, adapted per task.

        Args:
            inputs: `(support_images [B, S, *example_shape], support_labels,
                query_images [B, M, *example_shape])`: labels `[B, S]`
                (classification) or targets `[B, S, D]` (regression).

        Returns:
            Logits `[B, M, N]` (classification) or predictions `[B, M, D]`
            (regression).
        """
        support_images, support_labels, query_images = inputs
        logits = []
        for index in range(tf.TensorShape(support_images.shape)[0]):
            logits.append(self.adapt_and_predict(support_images[index], support_labels[index],
                                                 query_images[index]))
        return tf.stack(logits)

    def adapt_and_predict(self, support_images: Any, support_labels: Any,
                          query_images: Any) -> tf.Tensor:
        """Adapts to one episode's support set and returns query logits `[M, N]`.

        Regression learners return predictions `[M, D]`.

        Args:
            support_images: Examples `[S, *example_shape]` (images
                `[N*K, H, W, C]`).
            support_labels: `[N*K]` ints in `[0, N)` (classification), or
                float targets `[S, D]` (regression).
            query_images: `[M, *example_shape]`.

        Raises:
            ValueError: A malformed episode (`episodes.validate_episode`).

        Example:
            >>> logits = learner.adapt_and_predict(s_images, s_labels, q_images)
            >>> predictions = tf.argmax(logits, axis=-1)
        """
        support_images = tf.convert_to_tensor(support_images)
        query_images = tf.convert_to_tensor(query_images)
        support_labels = tf.convert_to_tensor(support_labels)
        assertions = episodes_lib.validate_episode(
            support_images, support_labels, query_images, None, self.n_way, batched=False,
            objective=self.objective, example_shape=self.example_shape)
        self._ensure_built(support_images, lead=1)
        with tf.control_dependencies(assertions):
            support_labels = tf.identity(support_labels)
        task = episodes_lib.Task(support_images, support_labels, query_images, None)
        logits, _ = self._query_logits(
            functional.read_values(self.network.trainable_variables), task, None, False)
        return logits

    # ------------------------------------------------------- saving
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(network=keras.saving.serialize_keras_object(self.network),
                      n_way=self.n_way, bn_mode=self.bn_mode, objective=self.objective,
                      task_reduction=self.task_reduction, parallel_tasks=self.parallel_tasks,
                      augmentation=None if self.augmentation is None
                      else keras.saving.serialize_keras_object(self.augmentation))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        if config.get("augmentation") is not None:
            config["augmentation"] = keras.saving.deserialize_keras_object(
                config["augmentation"])
        return cls(**config)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Recompiles a learner loaded from a `.keras` file (optimizer state included).

        `keras.Model.compile_from_config` skips models that override
        `compile`, as this class does (for its `jit_compile` default).
        """
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)
