"""Where a meta-step's time goes: per-op-type CPU time from a TF profiler trace.

Builds one configuration exactly as `meta_step.py` does (same flags), runs
warm-up steps, traces a few steps with `tf.profiler.experimental`, and sums
the executed TensorFlow ops' durations by op type from the trace's XPlane.
Prints one JSON line: the top op types with their share of op time (op
events of the executor threads: an op's wall time, its intra-op parallel
work included), the op time per step and the wall time per step.

Usage:
    python benchmarks/profile_step.py --learner=maml --mgaug=none --steps=3 --cores=1 --top=25
"""

import collections
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import meta_step  # noqa: E402  pylint: disable=wrong-import-position


def op_times(logdir):
    """`{op type: total microseconds}` of the TF ops in a profiler trace folder."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel

    totals = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue  # the executor's threads; Eigen pool lines repeat the work
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    # Op events are "op_name:OpType"; skip "Class::Method" markers.
                    if ":" in name and "::" not in name:
                        totals[name.rsplit(":", 1)[1]] += event.duration_ps / 1e6
    return totals


def main():
    args = meta_step.parse_args(
        [arg for arg in sys.argv[1:] if not arg.startswith("--top")])
    top_count = [int(arg.split("=", 1)[1]) for arg in sys.argv[1:] if arg.startswith("--top=")]
    args.top = top_count[-1] if top_count else 12
    if args.cores:
        meta_step.pin_cores(args.cores)  # before TensorFlow sizes its thread pools
    meta_step._setup()  # pylint: disable=protected-access
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    learner = meta_step.build_learner(args)
    batch = meta_step.random_batch(args)
    step = tf.function(learner.train_step)
    for _ in range(max(1, args.warmup)):
        float(step(batch)["loss"])
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(args.steps):
        float(step(batch)["loss"])
    wall = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()
    totals = op_times(logdir)
    op_total = sum(totals.values())
    top = [{"op": op, "share": round(us / op_total, 3), "ms_per_step": round(us / 1e3 / args.steps, 1)}
           for op, us in totals.most_common(args.top)]
    print(json.dumps({"kind": "profile", "learner": args.learner, "backbone": args.backbone,
                      "dtype": args.dtype, "meta_batch_size": args.meta_batch_size,
                      "image_size": args.image_size, "num_subnets": args.num_subnets,
                      "recompute": args.recompute,
                      "wall_s_per_step": round(wall, 3),
                      "op_s_per_step": round(op_total / 1e6 / args.steps, 3),
                      "conv_share": round(sum(us for op, us in totals.items()
                                              if "Conv2D" in op) / op_total, 3),
                      "usable_cores": len(os.sched_getaffinity(0)), "top_ops": top}))


if __name__ == "__main__":
    main()
