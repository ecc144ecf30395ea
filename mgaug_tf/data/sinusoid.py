"""`sinusoid`: the regression task family of Finn et al. (2017), section 5.1.

A task is a sine wave y = A sin(x - phi) with amplitude A ~ U[0.1, 5.0] and
phase phi ~ U[0, pi]; its examples are points x ~ U[-5, 5] with their value
y. Finn et al. ("Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017, section 5.1) give the ranges; their released code
(`data_generator.generate_sinusoid_batch` in cbfinn/maml) computes
`amp * sin(x - phase)`, the form used here.

Tasks are drawn with stateless random ops keyed by `(seed, split, task id)`,
as `mgaug_tf.data.episodes` keys its episodes: task `i` of a seed and split
is the same function with the same points whatever the batch size, the
parallelism or the run, so evaluation tasks are fixed by their seed. The
train, val and test splits are the same distribution under different keys
(they share no task). The support and query points of a task are
independent draws from U[-5, 5]; the task's amplitude and phase do not
depend on the number of points asked for.

The episode batch format is the package's (`mgaug_tf.episodes`), with
examples `[B, K, 1]` and targets `[B, K, 1]` float32 instead of images and
labels; there are no classes, so a learner's `n_way` does not apply (it
takes `n_way=None` with `objective="regression"`).

Example:
    >>> tasks = SinusoidTasks("train")
    >>> batches = task_dataset(tasks, k_shot=10, k_query=10, meta_batch_size=25)
    >>> (support_x, support_y, query_x), query_y = next(iter(batches))
    >>> support_x.shape, query_y.shape
    (TensorShape([25, 10, 1]), TensorShape([25, 10, 1]))
"""

import math
from typing import Any, Iterable, Optional

import numpy as np
import tensorflow as tf

from mgaug_tf.checks import check_integer, is_integer
from mgaug_tf.errors import ArgumentError

NAME = "sinusoid"
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)
# Each split draws its tasks under its own key, so no task is in two splits.
SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}
SPLIT_ALIASES = {"validation": "val"}


def _check_seed(seed, owner):
    if not is_integer(seed):
        raise ArgumentError("seed", seed, "must be an integer", owner=owner)
    return int(seed)


class SinusoidTasks:
    """One split of the sinusoid task family (what `mgaug_tf.data.load("sinusoid")` gives).

    Plays the part a `FewShotSplit` plays for images: `task_dataset` (and the
    trainer) draw episodes from it. It holds no data: every task is computed
    from its key.

    Args:
        split: `"train"`, `"val"` (or `"validation"`) or `"test"`.

    Attributes:
        dataset: `"sinusoid"`.
        split: The canonical split name.
        example_shape: `(1,)`: one input x per example.
        target_shape: `(1,)`: one value y per example.
        is_image: False (no image preprocessing applies).
        objective: `"regression"`: the loss is the mean squared error.
        amplitude_range, phase_range, input_range: The uniform ranges above.

    Raises:
        mgaug_tf.errors.ArgumentError: An unknown `split`.
    """

    dataset = NAME
    example_shape = (1,)
    target_shape = (1,)
    is_image = False
    objective = "regression"
    amplitude_range = AMPLITUDE_RANGE
    phase_range = PHASE_RANGE
    input_range = INPUT_RANGE

    def __init__(self, split: str = "train") -> None:
        canonical = SPLIT_ALIASES.get(split, split)
        if canonical not in SPLIT_KEYS:
            raise ArgumentError("split", split, f"must be one of {sorted(SPLIT_KEYS)}",
                                owner="SinusoidTasks")
        self.split = canonical
        self.description = (f"sinusoid {canonical} tasks: y = A sin(x - phase), A in "
                            f"{list(AMPLITUDE_RANGE)}, phase in [0, pi], x in "
                            f"{list(INPUT_RANGE)} (Finn et al. 2017, section 5.1)")

    def __repr__(self) -> str:
        return f"SinusoidTasks({self.split!r})"

    def _task_keys(self, task_id, seed):
        """Three stateless seeds `[3, 2]` of one task: its function, support and query points."""
        base = tf.constant([seed, SPLIT_KEYS[self.split]], tf.int64)
        key = tf.random.experimental.stateless_fold_in(base, tf.cast(task_id, tf.int64))
        return tf.random.experimental.stateless_split(key, 3)

    def _parameters(self, key):
        draws = tf.random.stateless_uniform([2], key, dtype=tf.float32)
        low, high = AMPLITUDE_RANGE
        amplitude = low + (high - low) * draws[0]
        low, high = PHASE_RANGE
        phase = low + (high - low) * draws[1]
        return amplitude, phase

    def task_parameters(self, task_ids: Iterable[int], seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Amplitude and phase of tasks `task_ids` (ints), as float32 numpy arrays `[T]`."""
        seed = _check_seed(seed, "SinusoidTasks.task_parameters")
        pairs = [self._parameters(self._task_keys(task_id, seed)[0])
                 for task_id in np.asarray(list(task_ids), np.int64).reshape(-1)]
        return (np.array([float(a) for a, _ in pairs], np.float32),
                np.array([float(p) for _, p in pairs], np.float32))

    def episode(self, task_id: Any, k_shot: int, k_query: int, seed: int = 0
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Task `task_id`'s support and query points (a graph function of `task_id`).

        Args:
            task_id: int64 scalar (a Python int or a tensor).
            k_shot: K, support points.
            k_query: Q, query points.
            seed: The task sequence's seed.

        Returns:
            `(support_x [K, 1], support_y [K, 1], query_x [Q, 1], query_y [Q, 1])`,
            float32, with y = A sin(x - phase).
        """
        keys = self._task_keys(task_id, seed)
        amplitude, phase = self._parameters(keys[0])
        low, high = INPUT_RANGE
        support_x = tf.random.stateless_uniform([k_shot, 1], keys[1], low, high, tf.float32)
        query_x = tf.random.stateless_uniform([k_query, 1], keys[2], low, high, tf.float32)
        return (support_x, amplitude * tf.sin(support_x - phase),
                query_x, amplitude * tf.sin(query_x - phase))


def load_tasks(split: str = "train") -> SinusoidTasks:
    """`mgaug_tf.data.load("sinusoid", split=...)`: the split's task family (no files)."""
    return SinusoidTasks(split)


def task_dataset(tasks: SinusoidTasks, k_shot: int, k_query: int, meta_batch_size: int, *,
                 training: bool = True, seed: int = 0, num_episodes: Optional[int] = None,
                 first_task: int = 0,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 prefetch: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """A `tf.data.Dataset` of meta-batches of sinusoid tasks, in the episode batch format.

    Each element is `((support_x, support_y, query_x), query_y)` with shapes
    `[B, K, 1]`, `[B, K, 1]`, `[B, Q, 1]`, `[B, Q, 1]`, all float32: tasks
    `first_task, first_task + 1, ...` of the seed in order (each pipeline of
    `input_context` takes every `num_input_pipelines`-th task, as
    `episode_dataset` does).

    Args:
        tasks: A `SinusoidTasks`.
        k_shot: K, support points per task (Finn et al.: 5 or 10).
        k_query: Q, query points per task.
        meta_batch_size: B, tasks per element (across all replicas when
            `input_context` is given).
        training: True: endless (unless `num_episodes`), batches of exactly
            B. False: `num_episodes` tasks, the last batch may be smaller.
        seed: Task `i` of a seed and split is always the same task.
        num_episodes: Number of tasks (required when `training=False`).
        first_task: Id of the first task.
        input_context: A `tf.distribute.InputContext`, as `episode_dataset`'s.
        prefetch: Elements prefetched.

    Raises:
        mgaug_tf.errors.ArgumentError: A bad argument, named.
    """
    owner = "task_dataset"
    if not isinstance(tasks, SinusoidTasks):
        raise ArgumentError("tasks", tasks, "must be a SinusoidTasks "
                            "(mgaug_tf.data.load('sinusoid', split=...))", owner=owner)
    k_shot = int(check_integer("k_shot", k_shot, owner))
    k_query = int(check_integer("k_query", k_query, owner))
    meta_batch_size = int(check_integer("meta_batch_size", meta_batch_size, owner))
    first_task = int(check_integer("first_task", first_task, owner, minimum=0))
    seed = _check_seed(seed, owner)
    if num_episodes is not None:
        num_episodes = int(check_integer("num_episodes", num_episodes, owner))
    elif not training:
        raise ArgumentError("num_episodes", None, "is required for evaluation "
                            "(training=False): the number of fixed test tasks (e.g. 600)",
                            owner=owner)
    pipelines, pipeline_id, batch_size = 1, 0, meta_batch_size
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync
        if meta_batch_size % replicas:
            raise ArgumentError("meta_batch_size", meta_batch_size,
                                f"must be divisible by the {replicas} replicas in sync",
                                owner=owner)
        batch_size = meta_batch_size // replicas
        pipelines, pipeline_id = (input_context.num_input_pipelines,
                                  input_context.input_pipeline_id)
    start = first_task + pipeline_id
    if num_episodes is None:
        ids = tf.data.Dataset.counter(start=start, step=pipelines)
    else:
        ids = tf.data.Dataset.range(start, first_task + num_episodes, pipelines)
    episodes = ids.map(lambda task_id: tasks.episode(task_id, k_shot, k_query, seed),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = episodes.batch(batch_size, drop_remainder=training)
    batches = batches.map(lambda support_x, support_y, query_x, query_y:
                          ((support_x, support_y, query_x), query_y))
    return batches.prefetch(prefetch)
