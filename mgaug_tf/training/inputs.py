"""Episode streams for training and evaluation, positioned and sharded for the trainer.

The trainer needs two things `mgaug_tf.data.episode_dataset` does not do by
itself:

* Start at any meta-step, without reading the episodes before it, so a
  resumed run sees exactly the episodes an uninterrupted run would.
* Give every replica a contiguous slice of each meta-batch (replica r gets
  tasks r*B/R .. (r+1)*B/R - 1), because MGAug seeds a task's masks with its
  global index in the meta-batch; across several workers the data package's
  own sharding interleaves episode ids instead.

Meta-batch s is always episodes s*B .. s*B + B - 1 of the seed's episode
sequence. Task slot j of a meta-batch is read by its own `episode_dataset`
pipeline taking every B-th episode id from `first + j`, through the
`input_context` rule "pipeline p of P reads ids p, p + P, p + 2P, ...",
with p set to the first id (past P when resuming). The tests pin this down
against `episode_dataset`'s own episodes; a `first_episode` argument there
would make the rule explicit.
"""

import contextlib
import dataclasses
from typing import Any

import tensorflow as tf

from mgaug_tf import data
from mgaug_tf.data import errors as data_errors
from mgaug_tf.data import sinusoid


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """What the episodes of one split look like (all of `episode_dataset` but the position).

    Attributes:
        split: A `mgaug_tf.data.FewShotSplit`, or a task family
            (`mgaug_tf.data.sinusoid.SinusoidTasks`: K support and Q query
            points per task, `n_way`, `image_size` and `augment` unused).
        n_way, k_shot, k_query: Classes, support and query images per class.
        image_size: Output size (int) or None for the split's own.
        augment: `episode_dataset`'s `augment` argument.
        seed: Episode sequence seed (episode i of a seed never changes).
    """

    split: Any
    n_way: int
    k_shot: int
    k_query: int
    image_size: Any = None
    augment: Any = "auto"
    seed: int = 0


def _task_family_batches(spec, meta_batch_size, worker, worker_tasks, replicas, first_step,
                         training, num_steps):
    """`meta_batches` of a task family: meta-batch s holds tasks s*B .. s*B + B - 1.

    A task is a function of its id alone, so this worker's block of each
    meta-batch is drawn directly by id (no per-slot pipelines to position).
    """
    first = first_step * meta_batch_size + worker * worker_tasks
    steps = (tf.data.Dataset.counter(first_step) if training
             else tf.data.Dataset.range(first_step, first_step + num_steps))
    ids = steps.map(lambda step: (step - first_step) * meta_batch_size + first
                    + tf.range(worker_tasks, dtype=tf.int64)).unbatch()
    episodes = ids.map(lambda task_id: spec.split.episode(task_id, spec.k_shot, spec.k_query,
                                                          spec.seed),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = episodes.batch(meta_batch_size // replicas, drop_remainder=True)
    batches = batches.map(lambda support_x, support_y, query_x, query_y:
                          ((support_x, support_y, query_x), query_y))
    if not training:
        batches = batches.repeat()  # endless, as below
    return batches.prefetch(tf.data.AUTOTUNE)


def _task_slot(spec, first_episode, stride, training, end):
    """Episodes `first_episode`, `first_episode + stride`, ... (< `end`), one per element."""
    position = tf.distribute.InputContext(num_input_pipelines=stride,
                                          input_pipeline_id=first_episode,
                                          num_replicas_in_sync=1)
    return data.episode_dataset(spec.split, spec.n_way, spec.k_shot, spec.k_query,
                                meta_batch_size=1, image_size=spec.image_size,
                                training=training, augment=spec.augment, seed=spec.seed,
                                num_episodes=end, input_context=position)


def _concat_tasks(*episodes):
    return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *episodes)


def meta_batches(spec, meta_batch_size, input_context=None, first_step=0, training=True,
                 num_steps=None):
    """This input pipeline's part of meta-batches `first_step`, `first_step + 1`, ...

    Args:
        spec: An `EpisodeSpec`.
        meta_batch_size: B, tasks per meta-step over all replicas.
        input_context: From `strategy.distribute_datasets_from_function`
            (None: one pipeline, one replica).
        first_step: Index of the first meta-batch.
        training: Training stream (endless, augmented) or evaluation episodes.
        num_steps: Number of meta-batches (required when not training).

    Returns:
        An endless dataset of per-replica episode batches with a static task
        axis of B / replicas: this worker's block of each meta-batch, one
        replica's slice after another (evaluation episodes start over after
        `num_steps` meta-batches).

    Raises:
        ValueError: B is not divisible by the replicas, or a bad episode spec.
    """
    workers, worker, replicas = 1, 0, 1
    if input_context is not None:
        workers = input_context.num_input_pipelines
        worker = input_context.input_pipeline_id
        replicas = input_context.num_replicas_in_sync
    if meta_batch_size % replicas:
        raise ValueError(f"meta_batch_size={meta_batch_size} is not divisible by the "
                         f"{replicas} replicas.")
    if not training and num_steps is None:
        raise ValueError("Evaluation episodes need num_steps.")
    worker_tasks = meta_batch_size // workers
    if isinstance(spec.split, sinusoid.SinusoidTasks):
        return _task_family_batches(spec, meta_batch_size, worker, worker_tasks, replicas,
                                    first_step, training, num_steps)
    first = first_step * meta_batch_size + worker * worker_tasks
    end = None if training else (first_step + num_steps) * meta_batch_size
    slots = [_task_slot(spec, first + slot, meta_batch_size, training, end)
             for slot in range(worker_tasks)]
    batches = tf.data.Dataset.zip(tuple(slots)).map(_concat_tasks)
    # Per-replica batches with a static task axis, in replica order.
    batches = batches.unbatch().batch(meta_batch_size // replicas, drop_remainder=True)
    if not training:
        # Endless (readers take num_steps): tf.distribute gives a finite
        # dataset a dynamic task axis under multi-worker training.
        batches = batches.repeat()
    return batches.prefetch(tf.data.AUTOTUNE)


def distributed_meta_batches(strategy, spec, meta_batch_size, first_step=0, training=True,
                             num_steps=None):
    """`meta_batches` for every replica of `strategy` (a distributed dataset)."""
    return strategy.distribute_datasets_from_function(
        lambda context: meta_batches(spec, meta_batch_size, context, first_step, training,
                                     num_steps))


@contextlib.contextmanager
def data_errors_reported():
    """Re-raises a data error from inside the input pipeline as the package's own.

    A corrupt image found by the episode pipeline surfaces as a TensorFlow
    `InvalidArgumentError` wrapping a Python traceback; this raises the
    `CorruptDataError` / `DataNotFoundError` it carries instead (one line
    naming the file). Other errors pass unchanged.
    """
    try:
        yield
    except tf.errors.OpError as error:
        data_error = data_errors.error_from_pipeline(error)
        if data_error is None:
            raise
        raise data_error from None
