"""Times the compiled meta-step (train_step), its peak memory and its FLOP rate.

One JSON line per configuration, each measured in its own process so that the
peak RSS (`resource.getrusage`; `tracemalloc` does not see TF's allocations)
belongs to that configuration alone; TensorFlow's allocator's own peak over
the steps (`tf.config.experimental.get_memory_info`) is given beside it
where the allocator keeps statistics. Episodes are random tensors held in
memory; the data pipeline's episode rate for the same episode shape is
measured separately (`"kind": "data"` lines). A `"kind": "machine"` line gives
the core count and this CPU's measured convolution peak (one large conv2d), to
compare with each step's achieved FLOP/s. FLOPs are counted statically from
the step's graph with TF's registered op statistics (convolutions, matmuls,
their gradients, elementwise ops), inside the graph loops too: each loop body
times its trip count (`graph_gflops`). Sub-networks whose input size is
drawn at run time (MGAug `--resolutions`) have no static shapes in that
graph: their FLOPs are counted per resolution (one sub-network pass traced
at each size, `resolution_gflops`) and weighted by the draw probabilities
(`gflop_per_resolution`, `gflop_per_step` = the expectation).

A configuration is an `mgaug_tf.config.ExperimentConfig`: the command line
takes every `mgaug-train` flag (`--learner`, `--backbone`, `--filters`,
`--image_size`, `--meta_batch_size`, `--dtype`, `--fused_batch_norm`,
`--recompute`, `--mgaug`, `--num_subnets`, `--keep_min`, `--keep_max`,
`--resolutions`, `--mgaug_parity`, ..., and `--flagfile`), applied on top of
the benchmark's base configuration `BASE` (Conv4-64, 84 px, 5-way 1-shot
15-query, 4 tasks per step, 5 inner steps, MAML, no MGAug, Adam 1e-3), and
the learner is built from it by `mgaug_tf.factory`, as `mgaug-train` builds
it. The benchmark's own options: `--channels` (mgaug-train's flag, here the
generated images' channels, default 3), `--steps` (timed steps, default 10),
`--warmup` (default 2), `--cores`, `--rounds`, `--measure`, `--suite`,
`--select`, `--markdown`. Each record gives the tasks per step and the
per-step minimum, median and maximum.

Usage:
    python benchmarks/meta_step.py --learner=maml --mgaug=none --steps=10 --cores=1
    python benchmarks/meta_step.py --learner=fomaml --filters=8 --image_size=28 --channels=1
    python benchmarks/meta_step.py --backbone=resnet12 --filters=64,160,320,640 --recompute
    python benchmarks/meta_step.py --dtype=mixed_bfloat16 --fused_batch_norm=off
    python benchmarks/meta_step.py --measure=machine
    python benchmarks/meta_step.py --measure=dtypes --learner=maml --steps=3 --warmup=1
    python benchmarks/meta_step.py --suite=mgaug_k --markdown=docs/performance.md
    python benchmarks/meta_step.py --suite=released --steps=3 --warmup=1
    python benchmarks/meta_step.py --suite=dtype --select=learner=maml,dtype=mixed_bfloat16
    python benchmarks/meta_step.py --suite=targets --rounds=3 --steps=3 --warmup=1 --markdown=perf.md
    python benchmarks/meta_step.py --suite=scaling --steps=2 --warmup=1 --markdown=perf.md

Suites (`SUITES`; rows are config overrides on the command line's config):
mgaug_k (MAML second order, Conv4-64 84 px, K = 0/1/3 catfish); targets
(MAML and FOMAML with 4 tasks per step, ProtoNet with 1, each without MGAug,
with the released catfish K = 3 (keep (0.98, 1), ProtoNet (0.97, 1), parity)
and with it and the 84/64/48 px resize, each on one pinned core; with
`--rounds` each MGAug row and its baseline form interleaved process pairs);
cores (second-order MAML on one core and on two); scaling (second-order MAML
with one setting of `BASE` varied at a time: inner steps 1/5/10/20 without
and with `recompute`, tasks per step 1/4/16, catfish K 0/1/3/5, 42 and 84 px;
its table gives each axis's least-squares slopes); resnet10 (ResNet-10 at
224 px with the reference pool: FOMAML (4 tasks) and ProtoNet (1), each
without and with the released MGAug, and second-order MAML with 4 tasks);
dtype (float32 and mixed_bfloat16 pairs); released (MAML, FOMAML and ProtoNet
(1 task per step) with `mgaug_tf.presets.released_mgaug(..., parity=True)`:
catfish K = 3, keep (0.98, 1) / (0.97, 1), the aligned-corner 84/64/48 px
resize and the reference flatten head, as the reference code ran them);
memory (ResNet-12 second order with recomputation); full (the whole grid:
the longest suite by far).
`--select=FLAG=VALUE,...` keeps the suite's rows whose settings match (flag
names, e.g. `learner=maml,dtype=mixed_bfloat16`; a flag a row does not set
matches its value on the command line or in `BASE`).
"""

import collections
import dataclasses
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=wrong-import-position
from absl import flags as absl_flags  # noqa: E402

from mgaug_tf import config  # noqa: E402
from mgaug_tf import presets  # noqa: E402
from mgaug_tf_cli import flags  # noqa: E402

# The benchmark's base configuration; command-line flags override it.
BASE = config.override(config.ExperimentConfig(), {
    "data.image_size": 84,
    "episodes.k_shot": 1, "episodes.k_query": 15, "episodes.meta_batch_size": 4,
    "model.backbone.name": "conv4", "model.backbone.filters": (64,),
    "model.learner.name": "maml", "model.learner.n_way": 5, "model.learner.inner_steps": 5,
    "model.mgaug.strategy": config.NO_MGAUG,
    "optimizer.name": "adam", "optimizer.learning_rate": 1e-3})

MEASURES = ("step", "data", "machine", "dtypes")
# Settings of a measurement that are not part of the config; suite rows may set these.
BENCH_KEYS = ("channels", "steps", "warmup", "cores")


class Row(typing.NamedTuple):
    """One configuration of a suite.

    overrides: `{dotted config path: value}`, applied to the command line's
        config with `config.override`.
    bench: The benchmark's own settings for this row (`BENCH_KEYS`: cores,
        steps, warmup, channels); the command line's otherwise.
    """

    overrides: dict
    bench: dict


def row(*overrides, **bench):
    """A `Row` from override dicts (later ones win) and bench settings."""
    merged = {}
    for part in overrides:
        merged.update(part)
    unknown = sorted(set(bench) - set(BENCH_KEYS))
    if unknown:
        raise ValueError(f"unknown bench settings {unknown}; expected some of {BENCH_KEYS}.")
    return Row(merged, bench)


def use_learner(name):
    return {"model.learner.name": name}


def mgaug_paths(mgaug_config):
    """An `MGAugConfig` as `{"model.mgaug.<field>": value}` overrides (every field)."""
    return {f"model.mgaug.{field.name}": getattr(mgaug_config, field.name)
            for field in dataclasses.fields(mgaug_config)}


NONE = {"model.mgaug.strategy": config.NO_MGAUG}
CATFISH_3 = {"model.mgaug.strategy": "catfish", "model.mgaug.num_subnets": 3}
ONE_TASK = {"episodes.meta_batch_size": 1}
CONV4_28 = {"data.image_size": 28}
RESNET12 = {"model.backbone.name": "resnet12", "model.backbone.filters": (64, 160, 320, 640)}
RECOMPUTE = {"model.learner.recompute": True}

# MGAug as the reference code's released runs used it (CUB, Conv4-64, 84 px),
# the named preset with the reference code's quirks (parity); ProtoNet with
# 1 task per step.
RELEASED_ROWS = [
    use_learner(name) | mgaug_paths(presets.released_mgaug(name, image_size=84, parity=True))
    | (ONE_TASK if name == "protonet" else {})
    for name in ("maml", "fomaml", "protonet")]
# The performance issue's table: each learner without MGAug and with the
# released MGAug (catfish K = 3, keep (0.98, 1) / (0.97, 1), parity), without
# and with the 84/64/48 px resize; ProtoNet with 1 task per step.
TARGET_ROWS = [
    use_learner(name) | variant | (ONE_TASK if name == "protonet" else {})
    for name in ("maml", "fomaml", "protonet")
    for variant in (NONE, mgaug_paths(presets.released_mgaug(name, image_size=84, parity=True))
                    | {"model.mgaug.resolutions": ()},
                    mgaug_paths(presets.released_mgaug(name, image_size=84, parity=True)))]
# ResNet-10 as the reference code runs it: 224 px, its AvgPool2d(5), MGAug
# with its ResNet sizes (224, 192, 160, 140) under parity.
RESNET10_224 = {"model.backbone.name": "resnet10", "model.backbone.filters": (64,),
                "model.backbone.final_pool": "reference", "data.image_size": 224}
RESNET10_ROWS = [
    RESNET10_224 | use_learner(name) | variant | (ONE_TASK if name == "protonet" else {})
    for name in ("fomaml", "protonet")
    for variant in (NONE, mgaug_paths(presets.released_mgaug(
        name, image_size=224, parity=True, backbone="resnet10")))] + [
    # Second-order MAML at 224 px with 4 tasks and no recomputation: the
    # tasks run one after another, so its peak is one task's and fits in this
    # machine's memory (the row's record gives its peak RSS).
    RESNET10_224 | use_learner("maml") | NONE]
DTYPES = ("float32", "mixed_bfloat16")
DTYPE_ROWS = [use_learner(name) | variant | {"model.backbone.dtype": dtype}
              for name in ("maml", "fomaml", "protonet")
              for variant in (NONE, CATFISH_3)
              for dtype in DTYPES]


def _grid():
    shapes = [row(), row(CONV4_28, channels=1), row(RESNET12)]
    variants = [NONE] + [{"model.mgaug.strategy": strategy, "model.mgaug.num_subnets": k}
                         for k in (1, 3) for strategy in ("catfish", "random_param")]
    return [row(shape.overrides, use_learner(name), {"episodes.k_shot": shots}, variant,
                **shape.bench)
            for shape, name, shots, variant in itertools.product(
                shapes, ("maml", "fomaml", "protonet"), (1, 5), variants)]


# How a second-order MAML step grows: one setting of BASE varied at a time
# (SCALING_AXES), on one core; inner steps also with recomputation.
RELEASED_CATFISH = mgaug_paths(presets.released_mgaug("maml", image_size=84, parity=True)) | {
    "model.mgaug.resolutions": ()}
SCALING_AXES = {
    "inner steps": ("model.learner.inner_steps", (1, 5, 10, 20)),
    "inner steps, recompute": ("model.learner.inner_steps", (1, 5, 10, 20)),
    "tasks per step": ("episodes.meta_batch_size", (1, 4, 16)),
    "K": ("model.mgaug.num_subnets", (0, 1, 3, 5)),
    "image px": ("data.image_size", (42, 84)),
}


def _scaling_plan():
    """The scaling suite's distinct rows and `{axis: [(row index, value), ...]}`.

    A configuration shared by several axes (BASE itself) runs once.
    """
    rows, configs, axes = [], [], {}
    for axis, (path, values) in SCALING_AXES.items():
        axes[axis] = []
        for value in values:
            if axis == "K":
                variant = RELEASED_CATFISH | {path: value} if value else NONE
            else:
                variant = NONE | {path: value}
            new = row(use_learner("maml"), variant,
                      RECOMPUTE if axis.endswith("recompute") else {}, cores=1)
            config_ = config.override(BASE, new.overrides)
            if config_ not in configs:
                rows.append(new)
                configs.append(config_)
            index = configs.index(config_)
            axes[axis].append((index, value))
    return rows, axes


def scaling_axis_rows():
    """`{axis: [(row index in the scaling suite, value), ...]}`."""
    return _scaling_plan()[1]


SUITES = {
    "mgaug_k": [row(use_learner("maml"), NONE)] + [
        row(use_learner("maml"), CATFISH_3, {"model.mgaug.num_subnets": k}) for k in (1, 3)],
    # The performance issue's table on one pinned core: MAML (second order),
    # FOMAML (4 tasks per step) and ProtoNet (1), each without MGAug, with
    # the released catfish K = 3 and with it and the 84/64/48 px resize.
    "targets": [row(overrides, cores=1) for overrides in TARGET_ROWS],
    # Second-order MAML on one core and on two.
    "cores": [row(use_learner("maml"), NONE, cores=cores) for cores in (1, 2)],
    "scaling": _scaling_plan()[0],
    "resnet10": [row(overrides, cores=1) for overrides in RESNET10_ROWS],
    "released": [row(overrides) for overrides in RELEASED_ROWS],
    # float32 and mixed_bfloat16 side by side: MAML (second order), FOMAML
    # and ProtoNet, each without MGAug and with K = 3.
    "dtype": [row(overrides) for overrides in DTYPE_ROWS],
    # Memory target: second order, ResNet-12, 5-shot, recomputed inner steps
    # (slow steps: one timed step; the peak RSS is the point).
    "memory": [row(use_learner("maml"), RESNET12, {"episodes.k_shot": 5}, RECOMPUTE, NONE,
                   steps=1, warmup=0)],
    "full": _grid(),
}


# ------------------------------------------------------------ command line
def define_options(flag_values):
    """The benchmark's own options, beside the `mgaug-train` flags."""
    absl_flags.DEFINE_enum("suite", None, sorted(SUITES), "Run this suite's rows, each in "
                           "its own process.", flag_values=flag_values)
    absl_flags.DEFINE_string("markdown", None, "Append the suite's results table to this "
                             "file.", flag_values=flag_values)
    absl_flags.DEFINE_string(
        "select", "", "Run only the suite's rows whose settings match all of these "
        "comma-separated FLAG=VALUE pairs (e.g. 'learner=maml,dtype=mixed_bfloat16'; a flag "
        "not set by a row matches its value on the command line or the benchmark's default).",
        flag_values=flag_values)
    absl_flags.DEFINE_integer("steps", 10, "Timed steps (after warm-up).", lower_bound=1,
                              flag_values=flag_values)
    absl_flags.DEFINE_integer("warmup", 2, "Untimed steps before the timed ones.",
                              lower_bound=0, flag_values=flag_values)
    absl_flags.DEFINE_integer(
        "cores", 0, "Pin the process to this many of the cores it may run on (the "
        "highest-numbered ones; under taskset, the ones taskset allows) before TensorFlow "
        "starts, so its thread pools match; 0: leave the affinity as it is.", lower_bound=0,
        flag_values=flag_values)
    absl_flags.DEFINE_integer(
        "rounds", 1, "Run the suite's rows this many times, one round after another (row 1, "
        "row 2, ..., row 1, row 2, ...), so that each MGAug row and its baseline are "
        "interleaved process pairs; the table gives the median over rounds.", lower_bound=1,
        flag_values=flag_values)
    absl_flags.DEFINE_enum(
        "measure", "step", list(MEASURES), "step: the meta-step; data: the episode "
        "sampler's rate; machine: cores and convolution peak; dtypes: float32 and "
        "mixed_bfloat16 (plain and fused batch norm) built in one process, their steps "
        "interleaved, so that a shared machine's load hits every variant alike.",
        flag_values=flag_values)


OPTIONS = ("suite", "markdown", "select", "steps", "warmup", "cores", "rounds", "measure",
           "channels")
# The image channels of the benchmark's generated images: mgaug-train's own
# --channels flag (a config field, unset by default), read as this default when unset.
DEFAULT_CHANNELS = 3


def flag_values():
    """Fresh absl `FlagValues` with the `mgaug-train` flags and the benchmark's options."""
    values = absl_flags.FlagValues()
    flags.define_flags(values)
    define_options(values)
    for spec in config.FIELDS.values():  # --help shows BASE's values as the defaults
        value = config.get(BASE, spec.path)
        if value != spec.default:
            values.set_default(spec.flag, [str(item) for item in value]
                               if isinstance(value, tuple) else value)
    return values


def parse(argv):
    """`(config, options)` of command-line flags (`argv` without the program name).

    `config` is `BASE` with the config flags given in `argv` applied (only
    those given: a flag's default does not replace `BASE`'s value);
    `options` holds the benchmark's own options (`OPTIONS`) as attributes.

    Raises:
        absl.flags.Error: A flag absl refuses (naming it), or a stray argument.
        mgaug_tf_cli.flags.FlagfileError: A `--flagfile` that cannot be read.
    """
    values = flag_values()
    rest = values(["meta_step.py", *flags.expand_flagfiles(list(argv))])
    if len(rest) > 1:
        raise absl_flags.Error(f"unexpected arguments {rest[1:]} (flags are --name=value).")
    options = types.SimpleNamespace(**{name: values[name].value for name in OPTIONS})
    if options.channels is None:
        options.channels = DEFAULT_CHANNELS
    return flags.config_from_flags(values, base=BASE), options


def config_flags(experiment):
    """The flags that turn `BASE` into `experiment` (a child process's command line)."""
    texts = []
    for spec in config.FIELDS.values():
        value = config.get(experiment, spec.path)
        if value == config.get(BASE, spec.path):
            continue
        text = flags.flag_text(spec, value)
        if text is None:
            raise ValueError(f"{spec.path}=None cannot be given as a flag (--{spec.flag}).")
        texts.append(text)
    return texts


def help_text():
    options = flag_values()
    lines = [__doc__.strip(), "", "benchmark options:"]
    for name in OPTIONS:
        flag = options[name]
        lines.append(absl_flags.text_wrap(f"--{name}: {flag.help}", indent="      ",
                                          firstline_indent="  "))
        if flag.default is not None:
            lines.append(f"      (default: {flag.default_as_str})")
    return "\n".join(lines) + "\n\n" + flags.help_text(
        usage="mgaug-train's flags (the defaults shown are mgaug-train's; BASE sets the "
              "benchmark's own, see above):")


# ------------------------------------------------------------ measurements
def setup_process(experiment):
    """Process settings of a measuring process (after `pin_cores`, before any step).

    The settings `mgaug-train` gives its process: TensorFlow's configuration
    and the config's thread count (`--intra_op_threads`).
    """
    import mgaug_tf  # pylint: disable=import-outside-toplevel
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel

    train.set_op_threads(experiment.runtime)
    mgaug_tf.configure_tensorflow()


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def reset_allocator_peak(device):
    """Resets `allocator_peak_mib`'s peak; False where `device`'s allocator keeps no statistics.

    TensorFlow keeps them for GPUs and TPUs, and for the CPU only with
    oneDNN's allocator (`TF_ENABLE_ONEDNN_OPTS`, on by default on x86).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    try:
        tf.config.experimental.reset_memory_stats(device)
    except ValueError:
        return False
    return True


def allocator_peak_mib(device):
    """TensorFlow's allocator's peak bytes in use on `device` since its last reset, in MiB.

    The chunks it handed out for the tensors (kernels' temporary buffers
    included) at its peak, which its best-fit rounding can make larger than
    the tensors (`profile_step.memory_peak`). Unlike the process's RSS it
    does not count free memory the allocator keeps in its pool. None where
    the allocator took the reset but counted nothing (oneDNN's system
    allocator, `TF_ONEDNN_USE_SYSTEM_ALLOCATOR`): a step always allocates.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    peak = tf.config.experimental.get_memory_info(device)["peak"]
    return peak / 2.0 ** 20 if peak > 0 else None


def image_shape(experiment, options):
    size = experiment.data.image_size
    return (size, size, options.channels)


def build_learner(experiment, options):
    """The compiled learner of one configuration, as `mgaug-train` builds it (seed 0)."""
    import keras  # pylint: disable=import-outside-toplevel

    from mgaug_tf import factory  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    learner = factory.build_learner(experiment.model, image_shape(experiment, options), seed=0)
    learner.compile(factory.build_optimizer(experiment.optimizer))
    learner.optimizer.build(learner.trainable_variables)
    return learner


def step_gflops(experiment, options, batch):
    """Static FLOP count of one meta-step of the configuration (`graph_gflops`)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    learner = build_learner(experiment, options)
    return graph_gflops(tf.function(learner.train_step).get_concrete_function(batch).graph)


WHILE_OPS = ("While", "StatelessWhile")
IF_OPS = ("If", "StatelessIf")
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


def graph_gflops(graph):
    """Static FLOP count of a traced graph, loop bodies times their trip counts.

    Each op is counted by TF's registered FLOP statistics (convolutions,
    matmuls, their gradients, the elementwise ops), as TF's profiler counts
    a graph; unlike the profiler, this also counts inside the learners'
    graph loops (`tf.while_loop` bodies, each times its static
    `maximum_iterations`), inside function calls (e.g. `recompute`'s
    recomputed inner steps) and inside conditionals (the costlier branch).
    Ops whose shapes are unknown when traced (sub-networks at a resolution
    drawn at run time, sliced `random_width` convolutions) count nothing.

    Args:
        graph: A `tf.Graph` (e.g. `concrete_function.graph`).

    Returns:
        GFLOP, a float.

    Raises:
        ValueError: A loop without a static `maximum_iterations`.
    """
    return _graph_flops(graph) / 1e9


def _function_graph(graph, op, attribute):
    return graph._get_function(op.get_attr(attribute).name).graph  # pylint: disable=protected-access


def _graph_flops(graph):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.python.framework import ops  # pylint: disable=import-outside-toplevel

    total = 0
    for op in graph.get_operations():
        if op.type in WHILE_OPS:
            trips = tf.get_static_value(op.inputs[1])  # maximum_iterations
            if trips is None or trips < 0:
                raise ValueError(f"loop {op.name!r} has no static maximum_iterations, so its "
                                 "FLOPs cannot be counted.")
            total += int(trips) * _graph_flops(_function_graph(graph, op, "body"))
        elif op.type in IF_OPS:
            total += max(_graph_flops(_function_graph(graph, op, branch))
                         for branch in ("then_branch", "else_branch"))
        elif op.type in CALL_OPS:
            total += _graph_flops(_function_graph(graph, op, "f"))
        else:
            try:
                stats = ops.get_stats_for_node_def(graph, op.node_def, "flops")
            except ValueError:  # a shape unknown when traced: not counted
                continue
            total += int(stats.value or 0)
    return total


def random_batch(experiment, options, seed=0):
    """An episode batch of the configuration's shape (random images, in memory)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    shape = image_shape(experiment, options)
    episodes = experiment.episodes
    b, n = episodes.meta_batch_size, experiment.model.learner.n_way

    def labels(per_class):
        return tf.constant(np.stack([rng.permutation(np.repeat(np.arange(n), per_class))
                                     for _ in range(b)]), tf.int32)

    return ((tf.constant(rng.random((b, n * episodes.k_shot) + shape, dtype=np.float32)),
             labels(episodes.k_shot),
             tf.constant(rng.random((b, n * episodes.k_query) + shape, dtype=np.float32))),
            labels(episodes.k_query))


def drawn_resolutions(learner):
    """The sizes the learner's next step draws for its sub-networks, task by task, k by k.

    Read from `MGAug.subnet_resolution` with the seeds of the learner's
    current `meta_step` (the step about to run), on one replica.
    """
    augmentation = learner.augmentation
    return [int(augmentation.subnet_resolution(augmentation.task_seed(learner, task), k))
            for task in range(learner.tasks_per_replica)
            for k in range(augmentation.num_subnets)]


def resolution_gflops(learner, batch, static_gflops):
    """`{size: GFLOP}` of the step with every sub-network's resolution fixed to `size`.

    A drawn size leaves the sub-networks' activations without static shapes,
    so the drawn step's own count (`static_gflops`, from `graph_gflops`)
    holds everything else: the full pass, mask draws and products, the
    outer update. What it misses is, per sub-network pass, the ops whose
    shapes follow the size. One pass (the resize plus
    `learner.task_gradients`, as MGAug's loop runs it) is traced at each
    size and once at a size given at run time; the difference is what a
    pass at that size adds, counted `tasks x K` times. A pass traces in a
    fraction of the whole step's time, so this is cheaper than tracing the
    step at each size.

    Args:
        learner: The built learner whose drawn step `static_gflops` counts.
        batch: An episode batch of the step's shapes (`random_batch`).
        static_gflops: `graph_gflops` of that learner's drawn step.

    Returns:
        `{size: GFLOP}` for each distinct size of `resolutions`.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from mgaug_tf import episodes  # pylint: disable=import-outside-toplevel
    from mgaug_tf.augment import mgaug  # pylint: disable=import-outside-toplevel

    augmentation = learner.augmentation
    (support, support_labels, query), query_labels = batch
    task = [support[0], support_labels[0], query[0], query_labels[0]]

    def pass_gflops(size):
        def one_pass(size_):
            images = [mgaug.resize_images(images_, size_, augmentation.resize_method)
                      for images_ in (task[0], task[2])]
            return learner.task_gradients(
                episodes.Task(images[0], task[1], images[1], task[3]),
                learner.trainable_variables)[1]

        if size is None:  # the size is a run-time value, as when drawn
            function = tf.function(one_pass).get_concrete_function(
                tf.TensorSpec([], tf.int32))
        else:
            function = tf.function(lambda: one_pass(size)).get_concrete_function()
        return graph_gflops(function.graph)

    unknown = pass_gflops(None)
    passes = learner.tasks_per_replica * augmentation.num_subnets
    return {size: static_gflops + passes * (pass_gflops(size) - unknown)
            for size in sorted(set(augmentation.resolutions))}


def _filters_text(backbone):
    if backbone.name == "conv4" and len(backbone.filters) == 1:
        return backbone.filters[0]
    return ",".join(map(str, backbone.filters))


def measure_step(experiment, options):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import_rss = peak_rss_mib()  # the framework's import baseline
    learner = build_learner(experiment, options)
    batch = random_batch(experiment, options)
    model, episodes = experiment.model, experiment.episodes
    b, n = episodes.meta_batch_size, model.learner.n_way
    step = tf.function(learner.train_step)
    # The step's tensors live where its weights were placed.
    device = learner.trainable_variables[0].value.device
    tracked = reset_allocator_peak(device)
    start = time.perf_counter()
    step.get_concrete_function(batch)
    trace_s = time.perf_counter() - start
    first_step_s = None
    for _ in range(options.warmup):
        start = time.perf_counter()
        float(step(batch)["loss"])
        first_step_s = first_step_s or time.perf_counter() - start
    augmentation = learner.augmentation
    drawn = bool(augmentation is not None and augmentation.resolutions
                 and len(set(augmentation.resolutions)) > 1)
    times, step_draws = [], []
    for _ in range(options.steps):
        if drawn:  # the sizes this step draws (they depend on learner.meta_step)
            step_draws.append(drawn_resolutions(learner))
        start = time.perf_counter()
        float(step(batch)["loss"])
        times.append(time.perf_counter() - start)
    # The peak of training itself: the FLOP count below may trace sub-network
    # passes at each fixed resolution, which the training process never does.
    training_peak_rss = peak_rss_mib()
    peak = allocator_peak_mib(device) if tracked else None
    allocator = {} if peak is None else {"allocator_peak_mib": round(peak, 1)}
    count_start = time.perf_counter()
    gflops = static_gflops = graph_gflops(step.get_concrete_function(batch).graph)
    per_resolution = {}
    step_gflop = [gflops] * len(times)
    if drawn:
        per_resolution = resolution_gflops(learner, batch, static_gflops)
        gflops = sum(probability * per_resolution[size] for size, probability
                     in augmentation.resolution_probabilities().items())
        # A step's FLOPs are linear in its sub-networks' sizes, so they are the
        # mean, over its tasks' sub-networks, of the step with all at that size.
        step_gflop = [statistics.mean(per_resolution[size] for size in sizes)
                      for sizes in step_draws]
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    mgaug = {}
    if augmentation is not None:
        mgaug = {"keep_range": [model.mgaug.keep_min, model.mgaug.keep_max],
                 "resolutions": [int(size) for size in model.mgaug.resolutions],
                 "mgaug_resize": model.mgaug.resize, "mgaug_parity": model.mgaug.parity,
                 "flatten_head": learner.augmentation_settings.flatten_head,
                 "mgaug_reduction": model.mgaug.reduction}
    return {
        "kind": "step", "learner": model.learner.name, "backbone": model.backbone.name,
        "dtype": model.backbone.dtype, "fused_batch_norm": model.backbone.fused_batch_norm,
        "filters": _filters_text(model.backbone),
        "image_size": experiment.data.image_size, "n_way": n, "k_shot": episodes.k_shot,
        "k_query": episodes.k_query, "meta_batch_size": b, "tasks_per_step": b,
        "inner_steps": 0 if model.learner.name == "protonet" else model.learner.inner_steps,
        "strategy": model.mgaug.strategy,
        "num_subnets": model.mgaug.num_subnets if augmentation else 0,
        **mgaug, "recompute": model.learner.recompute,
        "timed_steps": options.steps, "step_times_s": [round(t, 3) for t in times],
        "min_step_s": round(min(times), 3), "median_step_s": round(median, 3),
        "max_step_s": round(max(times), 3), "q1_step_s": round(quartiles[0], 3),
        "q3_step_s": round(quartiles[2], 3), "trace_s": round(trace_s, 1),
        "first_step_s": None if first_step_s is None else round(first_step_s, 1),
        "gflop_per_step": round(gflops, 1),
        "gflop_count": ("expected over the resolution draws" if per_resolution
                        else "static graph"),
        "gflop_per_resolution": {str(size): round(value, 1)
                                 for size, value in per_resolution.items()},
        "gflop_static_graph": round(static_gflops, 1),
        "gflop_count_s": round(time.perf_counter() - count_start, 1),
        "gflop_timed_steps": [round(value, 1) for value in step_gflop],
        "drawn_resolutions": [list(sizes) for sizes in step_draws],
        # FLOPs of the timed steps over their time (drawn sizes make steps unequal).
        "achieved_gflops": round(sum(step_gflop) / sum(times), 1),
        "peak_rss_mib": round(training_peak_rss, 1), "import_rss_mib": round(import_rss, 1),
        "peak_rss_above_import_mib": round(training_peak_rss - import_rss, 1), **allocator,
        "retraces": len(
            step._list_all_concrete_functions_for_serialization()) - 1,  # pylint: disable=protected-access
        "cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
    }


def measure_data(experiment, options, seconds=8.0):
    import numpy as np  # pylint: disable=import-outside-toplevel

    from mgaug_tf.data import FewShotSplit, episode_dataset  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(0)
    classes, per_class = 20, 20
    size, episodes = experiment.data.image_size, experiment.episodes
    n_way = experiment.model.learner.n_way
    images = rng.integers(0, 256, size=(classes * per_class, size, size, options.channels),
                          dtype=np.uint8)
    split = FewShotSplit.from_arrays(images, np.repeat(np.arange(classes), per_class))
    dataset = episode_dataset(split, n_way, episodes.k_shot, episodes.k_query,
                              episodes.meta_batch_size, seed=0)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    rate = batches * episodes.meta_batch_size / (time.perf_counter() - start)
    return {"kind": "data", "source": "in-memory uint8 arrays", "image_size": size,
            "n_way": n_way, "k_shot": episodes.k_shot, "k_query": episodes.k_query,
            "meta_batch_size": episodes.meta_batch_size, "episodes_per_s": round(rate, 1)}


def measure_machine():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
    flops = 2 * 64 * 84 * 84 * 64 * 64 * 9
    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        images = tf.cast(tf.random.normal([64, 84, 84, 64]), dtype)
        kernel = tf.cast(tf.random.normal([3, 3, 64, 64]), dtype)
        conv(images, kernel).numpy()
        times = []
        for _ in range(7):
            start = time.perf_counter()
            conv(images, kernel).numpy()
            times.append(time.perf_counter() - start)
        peaks[dtype.name] = round(flops / statistics.median(times) / 1e9, 1)
    return {"kind": "machine", "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "tensorflow": tf.__version__,
            "conv_peak_gflops": peaks["float32"], "conv_peak_gflops_bf16": peaks["bfloat16"],
            "conv_probe": "conv2d [64,84,84,64] x [3,3,64,64], median of 7"}


# (dtype, fused_batch_norm) of `measure_dtypes`; the first is the baseline.
DTYPE_VARIANTS = (("float32", "off"), ("float32", "auto"),
                  ("mixed_bfloat16", "off"), ("mixed_bfloat16", "auto"))


def measure_dtypes(experiment, options):
    """Median step times of the precision variants, their steps interleaved.

    Variants (`dtype`, `fused_batch_norm`): float32 with the plain batch norm,
    float32 with the fused kernel (the default), mixed_bfloat16 with the
    plain float32 batch norm and mixed_bfloat16 as it runs by default
    (fused). One step of each in turn, `--steps` rounds after `--warmup`;
    speed-ups are against the first (plain float32).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    batch = random_batch(experiment, options)
    steps = {}
    for dtype, fused in DTYPE_VARIANTS:
        variant = config.override(experiment, {"model.backbone.dtype": dtype,
                                               "model.backbone.fused_batch_norm": fused})
        steps[(dtype, fused)] = tf.function(build_learner(variant, options).train_step)
    times = {key: [] for key in steps}
    for round_index in range(options.warmup + options.steps):
        for key, step in steps.items():
            start = time.perf_counter()
            float(step(batch)["loss"])
            if round_index >= options.warmup:
                times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) for key, values in times.items()}
    baseline = medians[DTYPE_VARIANTS[0]]
    model, episodes = experiment.model, experiment.episodes
    return {"kind": "dtypes", "learner": model.learner.name, "backbone": model.backbone.name,
            "image_size": experiment.data.image_size, "k_shot": episodes.k_shot,
            "k_query": episodes.k_query, "meta_batch_size": episodes.meta_batch_size,
            "inner_steps": 0 if model.learner.name == "protonet" else model.learner.inner_steps,
            "strategy": model.mgaug.strategy,
            "num_subnets": model.mgaug.num_subnets if model.mgaug.enabled else 0,
            "recompute": model.learner.recompute, "timed_rounds": options.steps,
            "variants": [{"dtype": dtype, "fused_batch_norm": fused,
                          "step_times_s": [round(t, 3) for t in times[(dtype, fused)]],
                          "median_step_s": round(medians[(dtype, fused)], 3),
                          "speedup_vs_float32": round(baseline / medians[(dtype, fused)], 2)}
                         for dtype, fused in DTYPE_VARIANTS],
            "usable_cores": len(os.sched_getaffinity(0))}


# ------------------------------------------------------------ suites
def run_child(experiment, bench, measure="step"):
    """Measures one configuration in its own process; its JSON record."""
    command = [sys.executable, os.path.abspath(__file__), *config_flags(experiment),
               f"--measure={measure}", *(f"--{key}={bench[key]}" for key in BENCH_KEYS)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _machine_lines(records, command):
    machines = {r["usable_cores"]: r for r in records if r["kind"] == "machine"}
    lines = [f"Command: `{command}`", ""]
    for cores, machine in sorted(machines.items()):
        lines.append(
            f"Machine: {machine['cpu_count']} cores ({cores} usable), TensorFlow "
            f"{machine['tensorflow']}, measured convolution peak on {cores} core(s) "
            f"{machine['conv_peak_gflops']} GFLOP/s float32, "
            f"{machine.get('conv_peak_gflops_bf16', '?')} GFLOP/s bfloat16 "
            f"({machine['conv_probe']}).")
    return machines, lines


def _by_row(records):
    """Step records grouped by suite row, in row order (one group per record without rounds)."""
    groups = collections.defaultdict(list)
    for position, r in enumerate(r for r in records if r["kind"] == "step"):
        groups[r.get("row", f"record {position}")].append(r)
    return list(groups.values())


def _spread(values, digits=3):
    """"median (min-max)" of a list of numbers."""
    values = sorted(values)
    return (f"{round(statistics.median(values), digits)} "
            f"({round(values[0], digits)}-{round(values[-1], digits)})")


def _allocator_spread(group):
    """The rows' allocator peaks as "median (min-max)" MiB; empty for records without one."""
    peaks = sorted(g["allocator_peak_mib"] for g in group if "allocator_peak_mib" in g)
    return f"{statistics.median(peaks):.0f} ({peaks[0]:.0f}-{peaks[-1]:.0f})" if peaks else ""


def _baseline_key(r):
    return (r["learner"], r.get("dtype"), r["image_size"], r["tasks_per_step"],
            r.get("recompute"), r.get("usable_cores"))


def markdown(records, command):
    """The suite's table: one line per row, medians over rounds where rows ran in rounds.

    An MGAug row's "x baseline" columns compare it with the row of the same
    learner and shape without MGAug, round by round (the median and range
    over rounds): its median step time over the baseline's; its FLOPs over
    the baseline's (with drawn resolutions, the FLOPs of the sizes its timed
    steps drew); and its time per FLOP over the baseline's (the baseline's
    GFLOP/s over its own: 1.0 when its passes run at the baseline's rate).
    """
    machines, lines = _machine_lines(records, command)
    lines += ["", "| learner | dtype | px | tasks/step | MGAug | K | recompute | cores | "
              "rounds | median step s (min-max over rounds) | all steps min-max | trace s | "
              "GFLOP/step | GFLOP/s | % conv peak | peak RSS MiB above import (import) | "
              "allocator peak MiB (min-max) | step x baseline | GFLOP x baseline | "
              "s per GFLOP x baseline | data episodes/s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
              "---|"]
    data = {(r["image_size"], r["k_shot"]): r["episodes_per_s"]
            for r in records if r["kind"] == "data"}
    groups = _by_row(records)
    baselines = {_baseline_key(group[0]): group for group in groups
                 if group[0]["num_subnets"] == 0}
    for group in groups:
        r = group[0]
        strategy = r["strategy"]
        if r["num_subnets"]:
            strategy += f" keep {r['keep_range'][0]}-{r['keep_range'][1]}"
        if r.get("resolutions"):
            strategy += f", {'/'.join(map(str, r['resolutions']))} px"
        machine = machines.get(r.get("usable_cores"), next(iter(machines.values())))
        medians = [g["median_step_s"] for g in group]
        rate = statistics.median(g["achieved_gflops"] for g in group)
        timed_gflop = statistics.mean(r.get("gflop_timed_steps") or [r["gflop_per_step"]])
        gflop_text = f"{r['gflop_per_step']}"
        if r.get("gflop_timed_steps") and r.get("gflop_per_resolution"):
            gflop_text += f" (timed steps: {timed_gflop:.1f})"
        ratio = flop_ratio = cost_ratio = ""
        baseline = baselines.get(_baseline_key(r))
        if r["num_subnets"] and baseline:
            by_round = {g.get("round"): g for g in baseline}
            paired = [(g, by_round[g.get("round")]) for g in group if g.get("round") in by_round]
            ratio = _spread([g["median_step_s"] / b["median_step_s"] for g, b in paired], 2)
            flop_ratio = f"{timed_gflop / baseline[0]['gflop_per_step']:.2f}"
            cost_ratio = _spread([b["achieved_gflops"] / g["achieved_gflops"]
                                  for g, b in paired], 3)
        lines.append(
            f"| {r['learner']} | {r.get('dtype', 'float32')} | {r['image_size']} | "
            f"{r['tasks_per_step']} | {strategy} | {r['num_subnets']} | "
            f"{'yes' if r.get('recompute') else 'no'} | {r.get('usable_cores', '?')} | "
            f"{len(group)} | {_spread(medians)} | "
            f"{min(g['min_step_s'] for g in group)}-{max(g['max_step_s'] for g in group)} | "
            f"{r['trace_s']} | {gflop_text} | {rate:.1f} | "
            f"{100 * rate / machine['conv_peak_gflops']:.0f} | "
            f"{statistics.median(g['peak_rss_above_import_mib'] for g in group):.0f} "
            f"({r['import_rss_mib']:.0f}) | {_allocator_spread(group)} | "
            f"{ratio} | {flop_ratio} | {cost_ratio} | "
            f"{data.get((r['image_size'], r['k_shot']), '')} |")
    return "\n".join(lines) + "\n"


def scaling_markdown(records, command):
    """The scaling suite's table: each axis's rows and the least-squares slope of each measure."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    _, lines = _machine_lines(records, command)
    lines += ["", "| varied | value | median step s (min-max) | GFLOP/step | "
              "peak RSS MiB above import |", "|---|---|---|---|---|"]
    groups = {group[0]["row"]: group for group in _by_row(records) if "row" in group[0]}
    slopes = []
    for axis, rows in scaling_axis_rows().items():
        points = []
        for index, value in rows:
            group = groups.get(index)
            if not group:
                continue
            step = statistics.median(g["median_step_s"] for g in group)
            rss = statistics.median(g["peak_rss_above_import_mib"] for g in group)
            points.append((value, step, rss))
            lines.append(f"| {axis} | {value} | {_spread([g['median_step_s'] for g in group])} "
                         f"| {group[0]['gflop_per_step']} | {rss:.0f} |")
        if len(points) > 1:
            values, steps, rss = (np.array(column, dtype=float) for column in zip(*points))
            slopes.append(f"| {axis} | {np.polyfit(values, steps, 1)[0]:.3f} s | "
                          f"{np.polyfit(values, rss, 1)[0]:.1f} MiB |")
    lines += ["", "Least-squares slope per unit of the varied setting:", "",
              "| varied | step time | peak RSS |", "|---|---|---|"] + slopes
    return "\n".join(lines) + "\n"


def _matches(value, wanted):
    """Whether a setting's value is the `--select` text `wanted`."""
    if isinstance(value, bool):
        return wanted.lower() in (("true", "1", "yes") if value else ("false", "0", "no"))
    if isinstance(value, tuple):
        return ",".join(map(str, value)) == wanted.replace(" ", "")
    if isinstance(value, float):
        try:
            return value == float(wanted)
        except ValueError:
            return False
    return str(value) == wanted


def _selection(select):
    """`{key: value text}` of "key=value,...": a piece without "=" continues a list value."""
    wanted, key = {}, None
    for piece in select.split(","):
        name, sep, value = piece.partition("=")
        if sep:
            key = name.strip()
            if key not in config.FIELDS_BY_FLAG and key not in BENCH_KEYS:
                raise ValueError(f"--select: {key!r} is neither a flag of mgaug-train nor one "
                                 f"of {BENCH_KEYS}; expected comma-separated key=value pairs "
                                 f"(e.g. learner=maml,dtype=mixed_bfloat16), got {piece!r}.")
            wanted[key] = value.strip()
        elif key is not None and piece.strip():  # resolutions=84,64,48
            wanted[key] += "," + piece.strip()
        else:
            raise ValueError(f"--select: expected comma-separated key=value pairs with keys "
                             f"among the benchmark's flags, got {piece!r}.")
    return wanted


def select_rows(rows, select, experiment, options=None):
    """The rows of a suite matching `--select` ("flag=value,..."; all must match).

    Keys are flag names (`learner`, `dtype`, `mgaug`, ...; `FIELDS_BY_FLAG`
    maps them to config paths) or the bench settings `BENCH_KEYS`. A key a
    row does not set is compared with its value in `experiment` (the command
    line's config) or `options`. Raises ValueError naming an unknown key or a
    selection that matches no row.
    """
    if not select:
        return list(rows)
    wanted = _selection(select)

    def value(row_, key):
        if key in BENCH_KEYS:
            return row_.bench.get(key, getattr(options, key, None))
        path = config.FIELDS_BY_FLAG[key].path
        return row_.overrides.get(path, config.get(experiment, path))

    chosen = [row_ for row_ in rows
              if all(_matches(value(row_, key), text) for key, text in wanted.items())]
    if not chosen:
        raise ValueError(f"--select={select!r} matches no row of the suite.")
    return chosen


def pin_cores(count):
    """Pins this process to `count` of the CPUs it may use, the highest-numbered (before TF starts)."""
    allowed = sorted(os.sched_getaffinity(0))
    if count > len(allowed):
        raise ValueError(f"--cores={count}: this process may run on {len(allowed)} CPUs "
                         f"({allowed}).")
    os.sched_setaffinity(0, allowed[-count:])


def measure(experiment, options):
    """One measurement in this process (`options.measure`): its JSON record."""
    if options.cores:
        pin_cores(options.cores)
    setup_process(experiment)
    if options.measure == "machine":
        return measure_machine()
    if options.measure == "data":
        return measure_data(experiment, options)
    if options.measure == "dtypes":
        return measure_dtypes(experiment, options)
    return measure_step(experiment, options)


def run_suite(experiment, options, argv):
    rows = select_rows(SUITES[options.suite], options.select, experiment, options)
    defaults = {key: getattr(options, key) for key in BENCH_KEYS}
    rows = [(config.override(experiment, row_.overrides), dict(defaults, **row_.bench))
            for row_ in rows]
    records = []

    def record(*args, place=None, **kwargs):
        records.append(run_child(*args, **kwargs) | (place or {}))
        print(json.dumps(records[-1]), flush=True)

    for cores in sorted({bench["cores"] for _, bench in rows}):
        record(BASE, dict(defaults, cores=cores), measure="machine")
    shapes_done = set()
    for round_ in range(options.rounds):
        for index, (row_config, bench) in enumerate(rows):
            record(row_config, bench, place={"row": index, "round": round_})
            shape = (row_config.data.image_size, bench["channels"], row_config.episodes.k_shot)
            if shape not in shapes_done:
                shapes_done.add(shape)
                record(row_config, bench, measure="data")
    if options.markdown:
        command = "python benchmarks/meta_step.py " + " ".join(argv)
        table = (scaling_markdown(records, command) if options.suite == "scaling"
                 else markdown(records, command))
        with open(options.markdown, "a", encoding="utf-8") as handle:
            handle.write("\n" + table)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg in flags.HELP_ARGUMENTS for arg in argv):
        print(help_text())
        return
    try:
        experiment, options = parse(argv)
    except (absl_flags.Error, flags.FlagfileError) as error:
        sys.exit(f"meta_step.py: {error}\nTry --help.")
    if options.suite:
        try:
            run_suite(experiment, options, argv)
        except ValueError as error:
            sys.exit(f"meta_step.py: {error}")
        return
    try:
        record = measure(experiment, options)
    except config.ConfigFieldError as error:
        sys.exit(f"meta_step.py: {flags.describe(error.paths, experiment)}: {error.message}")
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
