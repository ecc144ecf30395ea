"""How much memory a meta-step needs, estimated before its graph is built.

A meta-step runs its tasks one after another (`MetaLearner`'s graph loop), so
its peak holds one task's graph: the tensors of the support-set forward passes
of the inner loop that the meta-gradient differentiates through, and those of
the query pass. `estimate_meta_step_memory` counts them from the backbone's
own tensors (one image's training-mode forward pass, traced symbolically:
nothing is computed) and the episode shape, and scales the count by a
constant fitted to measured peaks (docs/performance.md, "Memory of the first
meta-step"), rounded down so that the estimate stays at or below every
measured peak: a program that refuses a configuration whose estimate exceeds
the machine's memory (`mgaug-train`) never refuses one that would fit.

`available_memory` reads what this process may still use: the kernel's
MemAvailable, a cgroup's limit when one is set, else `os.sysconf`.
"""

import dataclasses
import functools
import math
import os

import tensorflow as tf

from mgaug_tf import factory
from mgaug_tf.learners.anil import ANIL
from mgaug_tf.learners.gradient import GradientLearner

# Bytes of a meta-step's peak per byte of the forward activations counted in
# `MemoryEstimate.images_kept` (the gradient graph's own tensors come on top
# of the forward pass's), fitted to measured peaks in docs/performance.md.
ACTIVATION_FACTOR = 1.45
# Bytes per trainable weight on top of the weights: the optimizer's slots
# (Adam: 2), the meta-gradient and its running sum over tasks.
STATE_BYTES_PER_WEIGHT_BYTE = 4
# Tensors that allocate no memory of their own (views, handles, constants).
_NOT_ALLOCATING = frozenset({"Const", "Identity", "IdentityN", "NoOp", "Placeholder",
                             "ReadVariableOp", "Reshape", "Shape", "StopGradient",
                             "VarHandleOp"})


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """A meta-step's memory beyond the process's own (imports, data), in bytes.

    Attributes:
        total_bytes: The estimate: `activation_bytes + state_bytes`.
        activation_bytes: One task's graph at its peak.
        state_bytes: Weights, optimizer slots and meta-gradients.
        activation_bytes_per_image: One image's forward-pass tensors through
            the backbone at the configured image size and dtype.
        images_kept: Image forward passes whose tensors one task's graph
            holds at its peak (support passes of the inner loop plus the
            query pass).
    """

    total_bytes: int
    activation_bytes: int
    state_bytes: int
    activation_bytes_per_image: int
    images_kept: int


@functools.lru_cache(maxsize=16)  # a config and shape always give the same profile
def backbone_profile(backbone_config, image_shape):
    """What one image costs the backbone: `(activation bytes, weight bytes, features)`.

    The backbone of `backbone_config` is built anew (its own weights, in the
    configured dtype) and called once on a symbolic batch of one image inside
    a `tf.function` trace, so no tensor is computed. Activation bytes: every
    floating-point tensor an op of the training-mode forward pass allocates
    (views and variable reads do not count). Weight bytes: the trainable
    weights. Features: the length of the image's feature vector.

    Args:
        backbone_config: A `config.BackboneConfig`.
        image_shape: `(height, width, channels)` of the network's input.

    Returns:
        `(int, int, int)`: bytes, bytes, a count.

    Raises:
        config.ConfigFieldError: As `factory.build_backbone`.
    """
    backbone = factory.build_backbone(backbone_config)
    input_shape = (1,) + tuple(int(size) for size in image_shape)
    backbone.build(input_shape)
    forward = tf.function(lambda images: backbone(images, training=True), autograph=False)
    function = forward.get_concrete_function(tf.TensorSpec(input_shape, tf.float32))
    graph = function.graph
    total = 0
    for operation in graph.get_operations():
        if operation.type in _NOT_ALLOCATING:
            continue
        for tensor in operation.outputs:
            if tensor.dtype.is_floating and tensor.shape.is_fully_defined():
                total += tensor.shape.num_elements() * tensor.dtype.size
    weights = sum(math.prod(variable.shape) * tf.as_dtype(variable.dtype).size
                  for variable in backbone.trainable_variables)
    features = math.prod(function.structured_outputs.shape[1:])
    return total, weights, int(features)


def estimate_meta_step_memory(experiment_config, image_shape):
    """Estimates the memory one meta-step of `experiment_config` adds to the process.

    Counts one task (tasks run one at a time, so `meta_batch_size` does not
    count; with `parallel_tasks` above 1 the tasks in flight need not peak
    together, so the count stays one task's, a lower bound): a
    gradient-based learner that differentiates through its inner
    loop (MAML, Meta-SGD) holds all `inner_steps` support passes and the
    query pass; a first-order one (FOMAML) or one that recomputes its inner
    steps (`recompute`) about one support pass and the query pass; ANIL and
    ProtoNet one pass over support and query images. MGAug's sub-networks
    run one after another once the full network's graph is done, and are
    pruned copies of it: they add less than one more pass and are not
    counted. Evaluation graphs are smaller (no meta-gradient) and not
    counted. Counting either would raise the estimate above some measured
    peaks, and it must stay below them.

    Args:
        experiment_config: A `config.ExperimentConfig`.
        image_shape: `(height, width, channels)` of the network's input.

    Returns:
        A `MemoryEstimate` (bytes).

    Raises:
        config.ConfigFieldError: A model value the constructors refuse.
    """
    model = experiment_config.model
    learner = factory.build_learner(model)  # unbuilt: its settings only, no weights
    n_way = model.learner.n_way
    support = n_way * experiment_config.episodes.k_shot
    query = n_way * experiment_config.episodes.k_query
    if isinstance(learner, GradientLearner) and not isinstance(learner, ANIL):
        kept_steps = (1 if learner.first_order or learner.recompute
                      else learner.inner_steps)
        images = kept_steps * support + query
    else:
        images = support + query
    per_image, weight_bytes, features = backbone_profile(
        model.backbone, tuple(int(size) for size in image_shape))
    activations = int(ACTIVATION_FACTOR * per_image * images)
    if isinstance(learner, GradientLearner):
        weight_bytes += (features + 1) * n_way * 4  # the linear head, float32
    state = (1 + STATE_BYTES_PER_WEIGHT_BYTE) * weight_bytes
    return MemoryEstimate(total_bytes=activations + state, activation_bytes=activations,
                          state_bytes=state, activation_bytes_per_image=per_image,
                          images_kept=images)


@dataclasses.dataclass(frozen=True)
class AvailableMemory:
    """Memory this process may still allocate, in bytes, and where the figure came from.

    Attributes:
        bytes: The smallest of the limits found.
        source: e.g. "MemAvailable of /proc/meminfo" or "cgroup memory.max".
        total_bytes: The machine's (or the cgroup's) total memory.
    """

    bytes: int
    source: str
    total_bytes: int


def _read_int(path):
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def available_memory():
    """What this process may still allocate: an `AvailableMemory`.

    Linux: MemAvailable (and MemTotal) of /proc/meminfo, lowered to a cgroup
    v2 `memory.max - memory.current` or cgroup v1 `memory.limit_in_bytes -
    memory.usage_in_bytes` when such a limit is set. Elsewhere: the free
    physical pages of `os.sysconf`.
    """
    found = []
    total = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        total = int(fields["MemTotal"].split()[0]) * 1024
        found.append((int(fields["MemAvailable"].split()[0]) * 1024,
                      "MemAvailable of /proc/meminfo"))
    except (OSError, KeyError, ValueError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        # cgroup v1 reports "no limit" as a huge page-rounded number.
        if limit is not None and usage is not None and limit < 2 ** 60:
            found.append((max(limit - usage, 0), f"cgroup limit {limit_file}"))
            total = limit if total is None else min(total, limit)
    if not found:
        page = os.sysconf("SC_PAGE_SIZE")
        found.append((os.sysconf("SC_AVPHYS_PAGES") * page, "os.sysconf(SC_AVPHYS_PAGES)"))
        total = os.sysconf("SC_PHYS_PAGES") * page
    available, source = min(found)
    return AvailableMemory(bytes=available, source=source, total_bytes=total or available)

