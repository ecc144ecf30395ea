"""Times the compiled meta-step (train_step), its peak memory and its FLOP rate.

One JSON line per configuration, each measured in its own process so that the
peak RSS (`resource.getrusage`; `tracemalloc` does not see TF's allocations)
belongs to that configuration alone. Episodes are random tensors held in
memory; the data pipeline's episode rate for the same episode shape is
measured separately (`"kind": "data"` lines). A `"kind": "machine"` line gives
the core count and this CPU's measured convolution peak (one large conv2d), to
compare with each step's achieved FLOP/s (FLOPs counted statically from the
step's graph by TF's profiler: convolutions, matmuls and their gradients).
Sub-networks whose input size is drawn at run time (MGAug `--resolutions`)
have no static shapes in that graph: their FLOPs are counted per resolution
(the step traced with the resolution fixed) and weighted by the draw
probabilities (`gflop_per_resolution`, `gflop_per_step` = the expectation).

MGAug is built from the same flags, by the same function, as in
`trainers/run.py` (`trainers.flags.build_augmentation`; `--mgaug`,
`--num_subnets`, `--keep_min`, `--keep_max`, `--resolutions`,
`--mgaug_parity`, ...). Each record gives the tasks per step and the
per-step minimum, median and maximum.

Usage:
    python benchmarks/meta_step.py --suite=mgaug_k --markdown=docs/performance.md
    python benchmarks/meta_step.py --learner=maml --mgaug=none --steps=10
    python benchmarks/meta_step.py --suite=released --steps=3 --warmup=1
    python benchmarks/meta_step.py --suite=targets --steps=5 --warmup=1 --markdown=perf.md
Suites: mgaug_k (MAML 2nd order, Conv4-64 84 px, K = 0/1/3 catfish), targets
(issue 13's table: MAML, FOMAML (4 tasks per step) and ProtoNet (1) without
MGAug, with catfish K = 3 and ProtoNet's with the 84/64/48 px resize, each on
one pinned core (`--cores`); second-order MAML on two cores; then the
released settings), dtype (float32 and mixed_bfloat16 pairs), released (MAML, FOMAML
and ProtoNet (1 task per step) with catfish K = 3, keep (0.98, 1) / (0.97, 1),
the aligned-corner 84/64/48 px resize and the reference flatten head, as the
reference code ran them (parity)), memory (ResNet-12 second order with
recomputation), full (the whole grid: hours on 2 cores).
"""

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=wrong-import-position
from trainers import flags as run_flags  # noqa: E402  (the MGAug flags and their builder)


def _grid():
    configs = []
    shapes = [dict(backbone="conv4", image_size=84, channels=3),
              dict(backbone="conv4", image_size=28, channels=1),
              dict(backbone="resnet12", image_size=84, channels=3)]
    variants = [dict(mgaug="none")] + [dict(num_subnets=k, mgaug=s)
                                       for k in (1, 3) for s in ("catfish", "random_param")]
    for shape, learner, shots, variant in itertools.product(
            shapes, ("maml", "fomaml", "protonet"), (1, 5), variants):
        configs.append(dict(shape, learner=learner, k_shot=shots, **variant))
    return configs


NONE = dict(mgaug="none")
# MGAug as the reference code's released runs used it (CUB, Conv4-64, 84 px):
# catfish, K = 3, sum, sub-network inputs resized (aligned corners) to 84, 64
# or 48 px, keep (0.98, 1) for MAML/FOMAML and (0.97, 1) with 1 task per step
# for ProtoNet; parity (the reference's quirks, its flatten-head rule).
RELEASED = dict(mgaug="catfish", num_subnets=3, keep_max=1.0, resolutions="84,64,48",
                mgaug_parity=True)
RELEASED_ROWS = [dict(learner="maml", keep_min=0.98, **RELEASED),
                 dict(learner="fomaml", keep_min=0.98, **RELEASED),
                 dict(learner="protonet", keep_min=0.97, meta_batch_size=1, **RELEASED)]
CATFISH_3 = dict(mgaug="catfish", num_subnets=3)
ISSUE_ROWS = [dict(learner="maml", **NONE), dict(learner="maml", **CATFISH_3),
              dict(learner="fomaml", **NONE), dict(learner="fomaml", **CATFISH_3),
              dict(learner="protonet", meta_batch_size=1, **NONE),
              dict(learner="protonet", meta_batch_size=1, **CATFISH_3),
              dict(learner="protonet", meta_batch_size=1, resolutions="84,64,48", **CATFISH_3)]
DTYPES = ("float32", "mixed_bfloat16")
DTYPE_ROWS = [dict(learner=learner, dtype=dtype, **variant)
              for learner in ("maml", "fomaml", "protonet")
              for variant in (NONE, dict(mgaug="catfish", num_subnets=3))
              for dtype in DTYPES]
SUITES = {
    "mgaug_k": [dict(learner="maml", **NONE)] + [
        dict(learner="maml", mgaug="catfish", num_subnets=k) for k in (1, 3)],
    # Issue 13's table (MAML / FOMAML 4 tasks per step, ProtoNet 1, catfish
    # K = 3 with the default keep range, one pinned core), second-order MAML
    # with recomputed inner steps and on both cores, then the released
    # settings (trace time of the slowest configurations). The dtype pairs
    # have their own suite; the vectorized twins of earlier versions were
    # removed with that path (docs/performance.md, "Decision: removed").
    "targets": [dict(row, cores=1) for row in ISSUE_ROWS]
    + [dict(learner="maml", cores=1, recompute=True, **NONE),
       dict(learner="maml", cores=2, **NONE)]
    + [dict(row, cores=1) for row in RELEASED_ROWS],
    "released": RELEASED_ROWS,
    # float32 and mixed_bfloat16 side by side (the bfloat16 issue): MAML
    # (second order), FOMAML and ProtoNet, each without MGAug and with K = 3.
    "dtype": DTYPE_ROWS,
    # Memory target: second order, ResNet-12, 5-shot, recomputed inner steps
    # (minutes per step on 2 cores: one timed step; the peak RSS is the point).
    "memory": [
        dict(learner="maml", backbone="resnet12", k_shot=5, recompute=True, steps=1, warmup=0,
             **NONE)],
    "full": _grid(),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES))
    parser.add_argument("--markdown", help="write the suite's results table to this file")
    parser.add_argument("--select", default="",
                        help="run only the suite's rows whose settings match all of these "
                             "comma-separated key=value pairs (e.g. 'learner=maml,"
                             "dtype=mixed_bfloat16'; a key not set by a row matches its "
                             "value on the command line or the default)")
    parser.add_argument("--fused_batch_norm", default="auto", choices=["auto", "true", "false"],
                        help="Conv4 batch norm: the fused kernel in float32 and 16-bit (auto, "
                             "the default; true: the same) or the plain ops (false)")
    parser.add_argument("--dtype", default="float32",
                        choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="Keras dtype policy of the backbone and head (mixed_*: float32 "
                             "weights, 16-bit compute)")
    parser.add_argument("--learner", default="maml",
                        choices=["maml", "fomaml", "anil", "metasgd", "protonet"])
    parser.add_argument("--backbone", default="conv4", choices=["conv4", "resnet12"])
    parser.add_argument("--filters", type=int, default=64, help="conv4 filters")
    parser.add_argument("--pooling", choices=["flatten", "avg"], default=None,
                        help="feature pooling (default: flatten for conv4, avg for resnet12)")
    parser.add_argument("--resnet_widths", default="64,160,320,640", help="resnet12 widths")
    parser.add_argument("--image_size", type=int, default=84)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--n_way", type=int, default=5)
    parser.add_argument("--k_shot", type=int, default=1)
    parser.add_argument("--k_query", type=int, default=15)
    parser.add_argument("--meta_batch_size", type=int, default=4, help="tasks per step")
    parser.add_argument("--inner_steps", type=int, default=5)
    run_flags.add_mgaug_arguments(parser)  # --mgaug, --num_subnets, --keep_min, ...
    parser.add_argument("--recompute", action="store_true",
                        help="recompute inner steps in the outer backward pass")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cores", type=int, default=0,
                        help="pin the process to this many cores (the highest-numbered ones) "
                             "before TensorFlow starts, so its thread pools match; 0: leave "
                             "the affinity as it is (e.g. set by taskset)")
    parser.add_argument("--measure", default="step", choices=["step", "data", "machine", "dtypes"],
                        help="dtypes: float32 and mixed_bfloat16 (plain and fused batch norm) "
                             "built in one process, their steps interleaved, so that a shared "
                             "machine's load hits every variant alike")
    return parser.parse_args(argv)


def _setup():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def unrolled_gflops(args, batch):
    """Static FLOP count of one meta-step, its task and sub-network loops unrolled.

    TF's profiler does not count inside `tf.while_loop` bodies, so the step is
    traced once more with `learner.unroll_loops` (same computation).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    learner = build_learner(args)
    learner.unroll_loops = True
    return graph_gflops(tf.function(learner.train_step).get_concrete_function(batch))


def graph_gflops(concrete_function):
    """Static FLOP count of a traced function (TF's registered op statistics)."""
    from tensorflow.python.profiler import model_analyzer  # pylint: disable=import-outside-toplevel
    from tensorflow.python.profiler import option_builder  # pylint: disable=import-outside-toplevel
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return model_analyzer.profile(concrete_function.graph, options=options).total_float_ops / 1e9


def build_learner(args):
    """The compiled learner of one configuration (also used by the retracing test)."""
    import keras  # pylint: disable=import-outside-toplevel

    import mgaug_tf as mg  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    pooling = args.pooling or ("flatten" if args.backbone == "conv4" else "avg")
    backbone = mg.get_backbone(args.backbone, pooling=pooling, dtype=args.dtype, **(
        {"filters": args.filters, "fused_batch_norm": {"auto": "auto", "true": True,
                                                       "false": False}[args.fused_batch_norm]}
        if args.backbone == "conv4"
        else {"widths": [int(width) for width in args.resnet_widths.split(",")]}))
    augmentation = run_flags.build_augmentation(args, args.image_size, seed=0)
    if args.learner == "protonet":
        learner = mg.ProtoNet(backbone, args.n_way, augmentation=augmentation)
    else:
        kind = {"maml": mg.MAML, "fomaml": mg.FOMAML, "anil": mg.ANIL,
                "metasgd": mg.MetaSGD}[args.learner]
        learner = kind(mg.FewShotClassifier(backbone, args.n_way), args.n_way,
                       inner_steps=args.inner_steps, augmentation=augmentation,
                       recompute=args.recompute)
    learner.compile(keras.optimizers.Adam(1e-3))
    shape = (args.image_size, args.image_size, args.channels)
    learner.build(shape)
    learner.optimizer.build(learner.trainable_variables)
    return learner


def random_batch(args, seed=0):
    """An episode batch of the configuration's shape (random images, in memory)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    shape = (args.image_size, args.image_size, args.channels)
    b, n = args.meta_batch_size, args.n_way

    def labels(per_class):
        return tf.constant(np.stack([rng.permutation(np.repeat(np.arange(n), per_class))
                                     for _ in range(b)]), tf.int32)

    return ((tf.constant(rng.random((b, n * args.k_shot) + shape, dtype=np.float32)),
             labels(args.k_shot),
             tf.constant(rng.random((b, n * args.k_query) + shape, dtype=np.float32))),
            labels(args.k_query))


def resolution_gflops(args, batch):
    """`{size: GFLOP}` of the step with every sub-network's resolution fixed to `size`.

    A drawn size makes the sub-networks' shapes unknown to the static count;
    with one size the step's graph has static shapes throughout.
    """
    import copy  # pylint: disable=import-outside-toplevel

    counts = {}
    for size in sorted({int(size) for size in args.resolutions}):
        fixed = copy.copy(args)
        fixed.resolutions = [str(size)]
        counts[size] = unrolled_gflops(fixed, batch)
    return counts


def measure_step(args):
    _setup()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import mgaug_tf  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    import_rss = peak_rss_mib()  # the framework's import baseline
    learner = build_learner(args)
    batch = random_batch(args)
    b, n = args.meta_batch_size, args.n_way
    step = tf.function(learner.train_step)
    start = time.perf_counter()
    step.get_concrete_function(batch)
    trace_s = time.perf_counter() - start
    first_step_s = None
    for _ in range(args.warmup):
        start = time.perf_counter()
        float(step(batch)["loss"])
        first_step_s = first_step_s or time.perf_counter() - start
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        float(step(batch)["loss"])
        times.append(time.perf_counter() - start)
    # The peak of training itself: the FLOP count below traces the step once
    # more (unrolled), which the training process never does.
    training_peak_rss = peak_rss_mib()
    gflops = static_gflops = unrolled_gflops(args, batch)
    per_resolution = {}
    augmentation = learner.augmentation
    if augmentation is not None and augmentation.resolutions and len(
            set(augmentation.resolutions)) > 1:
        per_resolution = resolution_gflops(args, batch)
        gflops = sum(probability * per_resolution[size] for size, probability
                     in augmentation.resolution_probabilities().items())
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    mgaug = {}
    if augmentation is not None:
        mgaug = {"keep_range": [args.keep_min, args.keep_max],
                 "resolutions": [int(size) for size in args.resolutions],
                 "mgaug_resize": args.mgaug_resize, "mgaug_parity": args.mgaug_parity,
                 "flatten_head": getattr(learner.network, "flatten_head", None),
                 "mgaug_reduction": args.mgaug_reduction}
    return {
        "kind": "step", "learner": args.learner, "backbone": args.backbone,
        "dtype": args.dtype, "fused_batch_norm": args.fused_batch_norm,
        "filters": args.filters if args.backbone == "conv4" else args.resnet_widths,
        "image_size": args.image_size, "n_way": n, "k_shot": args.k_shot,
        "k_query": args.k_query, "meta_batch_size": b, "tasks_per_step": b,
        "inner_steps": 0 if args.learner == "protonet" else args.inner_steps,
        "strategy": args.mgaug, "num_subnets": args.num_subnets if augmentation else 0,
        **mgaug, "recompute": args.recompute,
        "timed_steps": args.steps, "step_times_s": [round(t, 3) for t in times],
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
        "achieved_gflops": round(gflops / median, 1),
        "peak_rss_mib": round(training_peak_rss, 1), "import_rss_mib": round(import_rss, 1),
        "peak_rss_above_import_mib": round(training_peak_rss - import_rss, 1), "retraces": len(
            step._list_all_concrete_functions_for_serialization()) - 1,  # pylint: disable=protected-access
        "cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
    }


def measure_data(args, seconds=8.0):
    _setup()
    import numpy as np  # pylint: disable=import-outside-toplevel

    from mgaug_tf.data import FewShotSplit, episode_dataset  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(0)
    classes, per_class = 20, 20
    images = rng.integers(0, 256, size=(classes * per_class, args.image_size, args.image_size,
                                        args.channels), dtype=np.uint8)
    split = FewShotSplit.from_arrays(images, np.repeat(np.arange(classes), per_class))
    dataset = episode_dataset(split, args.n_way, args.k_shot, args.k_query,
                              args.meta_batch_size, seed=0)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    rate = batches * args.meta_batch_size / (time.perf_counter() - start)
    return {"kind": "data", "source": "in-memory uint8 arrays", "image_size": args.image_size,
            "n_way": args.n_way, "k_shot": args.k_shot, "k_query": args.k_query,
            "meta_batch_size": args.meta_batch_size, "episodes_per_s": round(rate, 1)}


def measure_machine():
    _setup()
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


DTYPE_VARIANTS = (("float32", "false"), ("float32", "auto"),
                  ("mixed_bfloat16", "false"), ("mixed_bfloat16", "auto"))


def measure_dtypes(args):
    """Median step times of the precision variants, their steps interleaved.

    Variants (`dtype`, `fused_batch_norm`): float32 with the plain batch norm
    (the float32 default until issue 13), float32 with the fused kernel (the
    default since), mixed_bfloat16 with the plain float32 batch norm (the path
    before the fused kernel) and mixed_bfloat16 as it runs by default
    (fused). One step of each in turn, `args.steps` rounds after
    `args.warmup`; speed-ups are against the first (plain float32).
    """
    import copy  # pylint: disable=import-outside-toplevel

    _setup()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    batch = random_batch(args)
    steps = {}
    for dtype, fused in DTYPE_VARIANTS:
        variant = copy.copy(args)
        variant.dtype, variant.fused_batch_norm = dtype, fused
        steps[(dtype, fused)] = tf.function(build_learner(variant).train_step)
    times = {key: [] for key in steps}
    for round_index in range(args.warmup + args.steps):
        for key, step in steps.items():
            start = time.perf_counter()
            float(step(batch)["loss"])
            if round_index >= args.warmup:
                times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) for key, values in times.items()}
    baseline = medians[("float32", "false")]
    return {"kind": "dtypes", "learner": args.learner, "backbone": args.backbone,
            "image_size": args.image_size, "k_shot": args.k_shot, "k_query": args.k_query,
            "meta_batch_size": args.meta_batch_size,
            "inner_steps": 0 if args.learner == "protonet" else args.inner_steps,
            "strategy": args.mgaug,
            "num_subnets": args.num_subnets if args.mgaug != "none" else 0,
            "recompute": args.recompute, "timed_rounds": args.steps,
            "variants": [{"dtype": dtype, "fused_batch_norm": fused,
                          "step_times_s": [round(t, 3) for t in times[(dtype, fused)]],
                          "median_step_s": round(medians[(dtype, fused)], 3),
                          "speedup_vs_float32": round(baseline / medians[(dtype, fused)], 2)}
                         for dtype, fused in DTYPE_VARIANTS],
            "usable_cores": len(os.sched_getaffinity(0))}


def run_child(base_args, overrides):
    command = [sys.executable, os.path.abspath(__file__)] + base_args + [
        f"--{key}" if value is True else f"--{key}={value}"
        for key, value in overrides.items() if value is not False]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown(records, command):
    machines = {r["usable_cores"]: r for r in records if r["kind"] == "machine"}
    lines = [f"Command: `{command}`", ""]
    for cores, machine in sorted(machines.items()):
        lines.append(
            f"Machine: {machine['cpu_count']} cores ({cores} usable), TensorFlow "
            f"{machine['tensorflow']}, measured convolution peak on {cores} core(s) "
            f"{machine['conv_peak_gflops']} GFLOP/s float32, "
            f"{machine.get('conv_peak_gflops_bf16', '?')} GFLOP/s bfloat16 "
            f"({machine['conv_probe']}).")
    lines += ["", "| learner | dtype | px | tasks/step | MGAug | K | recompute | cores | "
              "median step s (q1-q3; min-max) | trace s | first step s | GFLOP/step | GFLOP/s | "
              "% conv peak | peak RSS MiB (above import) | data episodes/s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    data = {(r["image_size"], r["k_shot"]): r["episodes_per_s"]
            for r in records if r["kind"] == "data"}
    for r in records:
        if r["kind"] != "step":
            continue
        strategy = r["strategy"]
        if r.get("resolutions"):
            strategy += (f" keep {r['keep_range'][0]}-{r['keep_range'][1]}, "
                         f"{'/'.join(map(str, r['resolutions']))} px")
        machine = machines.get(r.get("usable_cores"), next(iter(machines.values())))
        lines.append(
            f"| {r['learner']} | {r.get('dtype', 'float32')} | {r['image_size']} | "
            f"{r['tasks_per_step']} | {strategy} | {r['num_subnets']} | "
            f"{'yes' if r.get('recompute') else 'no'} | {r.get('usable_cores', '?')} | "
            f"{r['median_step_s']} ({r['q1_step_s']}-{r['q3_step_s']}; "
            f"{r['min_step_s']}-{r['max_step_s']}) | {r['trace_s']} | "
            f"{r.get('first_step_s', '')} | {r['gflop_per_step']} | {r['achieved_gflops']} | "
            f"{100 * r['achieved_gflops'] / machine['conv_peak_gflops']:.0f} | "
            f"{r['peak_rss_mib']:.0f} ({r.get('peak_rss_above_import_mib', 0):.0f}) | "
            f"{data.get((r['image_size'], r['k_shot']), '')} |")
    return "\n".join(lines) + "\n"


def select_rows(rows, select, args):
    """The rows of a suite matching `--select` ("key=value,..."; all must match).

    A key a row does not set is compared with its value in `args` (the
    command line or the default). Raises ValueError naming an unknown key or
    a selection that matches no row.
    """
    if not select:
        return list(rows)
    wanted = {}
    for pair in select.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not hasattr(args, key.strip()):
            raise ValueError(f"--select: expected comma-separated key=value pairs with keys "
                             f"among the benchmark's flags, got {pair!r}.")
        wanted[key.strip()] = value.strip()
    chosen = [row for row in rows
              if all(str(row.get(key, getattr(args, key))) == value
                     for key, value in wanted.items())]
    if not chosen:
        raise ValueError(f"--select={select!r} matches no row of the suite.")
    return chosen


def pin_cores(count):
    """Pins this process to its `count` highest-numbered CPUs (before TF starts)."""
    cpus = sorted(range(os.cpu_count()))[-count:]
    if count > len(cpus):
        raise ValueError(f"--cores={count}: this machine has {os.cpu_count()} CPUs.")
    os.sched_setaffinity(0, cpus)


def main():
    args = parse_args()
    if args.cores and not args.suite:
        pin_cores(args.cores)
    if not args.suite:
        if args.measure == "machine":
            record = measure_machine()
        elif args.measure == "data":
            record = measure_data(args)
        elif args.measure == "dtypes":
            record = measure_dtypes(args)
        else:
            record = measure_step(args)
        print(json.dumps(record), flush=True)
        return
    rows = select_rows(SUITES[args.suite], args.select, args)
    base = [arg for arg in sys.argv[1:]
            if not arg.startswith(("--suite", "--markdown", "--select"))]
    records = []
    for cores in sorted({row.get("cores", args.cores) for row in rows}):
        records.append(run_child(base, {"measure": "machine", "cores": cores}))
        print(json.dumps(records[-1]), flush=True)
    shapes_done = set()
    for overrides in rows:
        records.append(run_child(base, overrides))
        print(json.dumps(records[-1]), flush=True)
        shape = (overrides.get("image_size", args.image_size),
                 overrides.get("channels", args.channels), overrides.get("k_shot", args.k_shot))
        if shape not in shapes_done:
            shapes_done.add(shape)
            data_overrides = {key: value for key, value in overrides.items()
                              if key in ("image_size", "channels", "k_shot", "cores")}
            records.append(run_child(base, dict(data_overrides, measure="data")))
            print(json.dumps(records[-1]), flush=True)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write("\n" + markdown(records, "python benchmarks/meta_step.py "
                                         + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
