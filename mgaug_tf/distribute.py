"""Choosing a `tf.distribute` strategy and this process's role in it.

How a meta-step is distributed (see `mgaug_tf.training.inputs` and the
learners' `train_step`): the B tasks of a meta-batch are split into
contiguous slices, one per replica (replica r gets tasks r*B/R .. (r+1)*B/R-1,
the global task index MGAug seeds its masks with); each replica sums the
meta-gradients of its tasks; Keras's optimizer all-reduces them with SUM, so
the update equals the single-device update of the whole meta-batch
(`task_reduction="mean"` divides by the global task count inside the
learner). Batch-norm moving statistics are MEAN-aggregated variables, so they
stay identical on every replica.
"""

import dataclasses
import json
import os

import tensorflow as tf

from mgaug_tf import choices

STRATEGIES = choices.DISTRIBUTION_STRATEGIES


class DistributionError(ValueError):
    """The requested strategy cannot run here (bad TF_CONFIG, devices already set up)."""


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices.

    Lets mirrored training run on a machine without GPUs (tests, debugging).
    Must run before TensorFlow initialises its devices, i.e. before the first
    op or strategy.

    Raises:
        DistributionError: TensorFlow's devices are already initialised.
    """
    if num_devices < 1:
        raise DistributionError(f"cpu_devices must be >= 1, got {num_devices}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as error:
        raise DistributionError(f"Cannot split the CPU into {num_devices} devices: TensorFlow "
                                f"has already initialised its devices ({error}).") from None


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise DistributionError(
            "strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": 0}}' (see docs/cli.md).")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise DistributionError(f"TF_CONFIG is not valid ({error!r}); it needs "
                                "cluster.worker (a list of host:port) and task.type / "
                                f"task.index. Got: {raw}") from None
    members = config["cluster"].get(task_type)
    if not isinstance(workers, list) or not workers or not members or \
            not 0 <= index < len(members):
        raise DistributionError(f"TF_CONFIG task {task_type}:{index} is not in its cluster "
                                f"{config['cluster']}.")
    return config


def create_strategy(name, devices=None):
    """Builds the strategy named by `name` (one of `STRATEGIES`).

    Args:
        name: `"auto"` (mirrored over the GPUs when more than one is visible,
            else one device), `"one_device"` (the first GPU, else the CPU),
            `"mirrored"` (every GPU, else every logical CPU device), or
            `"multi_worker"` (MultiWorkerMirroredStrategy; TF_CONFIG names
            the workers and this process's place among them).
        devices: Optional device names for `"mirrored"`.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        DistributionError: Unknown name or unusable TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise DistributionError(f"Unknown strategy {name!r}; use one of {STRATEGIES}.")
    if name == "multi_worker":
        # Before anything lists logical devices: that starts the eager context,
        # after which collective ops can no longer be configured.
        _tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    devices = devices or gpus or [device.name for device in
                                  tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster.

    Attributes:
        task_type: `"worker"`/`"chief"` under multi-worker training, else None.
        task_id: Index among the tasks of `task_type` (0 on one machine).
        num_workers: Processes training together (1 on one machine).
        cluster_has_chief: Whether TF_CONFIG names a separate chief task
            (otherwise worker 0 is the chief).
    """

    task_type: str = None
    task_id: int = 0
    num_workers: int = 1
    cluster_has_chief: bool = False

    @property
    def is_chief(self):
        """Whether this process writes checkpoints, summaries, results and exports."""
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_id == 0 and not self.cluster_has_chief)


def worker_role(strategy):
    """The `WorkerRole` of this process under `strategy`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return WorkerRole()
    cluster = resolver.cluster_spec().as_dict()
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return WorkerRole(resolver.task_type, int(resolver.task_id or 0), workers,
                      cluster_has_chief="chief" in cluster)


def barrier(strategy):
    """Returns once every worker has called it (immediately on one machine).

    Workers must not read the chief's checkpoints before it has written them
    (e.g. restoring the best checkpoint right after training).
    """
    if worker_role(strategy).num_workers > 1:
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None)
