"""Times the compiled meta-step (train_step) and its peak memory.

One JSON line per configuration. Each configuration runs in its own process,
so peak RSS (resource.getrusage: `tracemalloc` does not see TF's allocations)
belongs to that configuration alone. Episodes are random tensors held in
memory: the data pipeline is measured by benchmarks/data_pipeline.py.

Usage:
    python benchmarks/meta_step.py --suite=mgaug_k        # K = 0, 1, 3 catfish
    python benchmarks/meta_step.py --learner=maml --num_subnets=0 --steps=10
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SUITES = {
    # Issue 2/3: MAML second order, Conv4-64 84x84, 5-way 1-shot, 15 queries,
    # meta-batch 4, 5 inner steps; K = 0 (no MGAug), 1 and 3 with catfish.
    "mgaug_k": [dict(learner="maml", strategy="catfish", num_subnets=k) for k in (0, 1, 3)],
    "learners": [dict(learner=name) for name in ("maml", "fomaml", "anil", "metasgd",
                                                 "protonet")],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES))
    parser.add_argument("--learner", default="maml",
                        choices=["maml", "fomaml", "anil", "metasgd", "protonet"])
    parser.add_argument("--backbone", default="conv4", choices=["conv4", "resnet12"])
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=84)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--n_way", type=int, default=5)
    parser.add_argument("--k_shot", type=int, default=1)
    parser.add_argument("--k_query", type=int, default=15)
    parser.add_argument("--meta_batch_size", type=int, default=4)
    parser.add_argument("--inner_steps", type=int, default=5)
    parser.add_argument("--strategy", default="catfish")
    parser.add_argument("--num_subnets", type=int, default=0, help="K; 0 disables MGAug")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2)
    return parser.parse_args(argv)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_one(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import mgaug_tf as mg  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    backbone = mg.get_backbone(args.backbone, **(
        {"filters": args.filters} if args.backbone == "conv4" else {}))
    augmentation = None
    if args.num_subnets:
        augmentation = mg.MGAug(args.strategy, num_subnets=args.num_subnets)
    if args.learner == "protonet":
        learner = mg.ProtoNet(backbone, args.n_way, augmentation=augmentation)
    else:
        kind = {"maml": mg.MAML, "fomaml": mg.FOMAML, "anil": mg.ANIL,
                "metasgd": mg.MetaSGD}[args.learner]
        learner = kind(mg.FewShotClassifier(backbone, args.n_way), args.n_way,
                       inner_steps=args.inner_steps, augmentation=augmentation)
    learner.compile(keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    shape = (args.image_size, args.image_size, args.channels)
    b, n = args.meta_batch_size, args.n_way
    batch = ((tf.constant(rng.random((b, n * args.k_shot) + shape, dtype=np.float32)),
              tf.constant(np.tile(np.repeat(np.arange(n), args.k_shot), (b, 1)), tf.int32),
              tf.constant(rng.random((b, n * args.k_query) + shape, dtype=np.float32))),
             tf.constant(np.tile(np.repeat(np.arange(n), args.k_query), (b, 1)), tf.int32))
    learner.build(shape)
    learner.optimizer.build(learner.trainable_variables)
    step = tf.function(learner.train_step)
    start = time.perf_counter()
    float(step(batch)["loss"])
    first_step = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        float(step(batch)["loss"])
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        float(step(batch)["loss"])
        times.append(time.perf_counter() - start)
    quartiles = statistics.quantiles(times, n=4)
    return {
        "learner": args.learner, "backbone": args.backbone, "filters": args.filters,
        "image_size": args.image_size, "n_way": n, "k_shot": args.k_shot,
        "k_query": args.k_query, "meta_batch_size": b, "inner_steps": args.inner_steps,
        "strategy": args.strategy if args.num_subnets else "none",
        "num_subnets": args.num_subnets, "steps": args.steps,
        "median_step_s": round(statistics.median(times), 4),
        "q1_step_s": round(quartiles[0], 4), "q3_step_s": round(quartiles[2], 4),
        "first_step_s (trace+run)": round(first_step, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1), "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }


def main():
    args = parse_args()
    if not args.suite:
        print(json.dumps(run_one(args)), flush=True)
        return
    base = [arg for arg in sys.argv[1:] if not arg.startswith("--suite")]
    for overrides in SUITES[args.suite]:
        command = [sys.executable, os.path.abspath(__file__)] + base + [
            f"--{key}={value}" for key, value in overrides.items()]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        print(output.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
