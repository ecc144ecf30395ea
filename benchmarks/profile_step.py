"""Where a meta-step's time goes: per-op-type CPU time from a TF profiler trace.

Builds one configuration exactly as `meta_step.py` does (same flags), runs
warm-up steps, traces a few steps with `tf.profiler.experimental`, and sums
the executed TensorFlow ops' durations by op type from the trace's XPlane.
Prints one JSON line: the top op types with their share of op time (op
events of the executor threads: an op's wall time, its intra-op parallel
work included), the op time per step and the wall time per step.

With `--memory`, traces one step with the allocator's events instead and
prints where its memory peaks: the largest tensors alive at the peak of the
recorded allocations (producing op, shape, MiB, and the MiB of the chunk the
allocator gave each), the allocator's own peak (`peak_bytes_in_use`), and at
that peak the live tensors' requested bytes against the chunks holding them
(the allocator's rounding, `memory_peak`).

Usage:
    python benchmarks/profile_step.py --learner=maml --mgaug=none --steps=3 --cores=1 --top=25
    python benchmarks/profile_step.py --learner=maml --mgaug=none --meta_batch_size=1 --cores=1 --memory
"""

import collections
import glob
import json
import os
import sys
import tempfile
import time

if __package__:  # python -m benchmarks.profile_step, or imported (from tests)
    from benchmarks import meta_step
else:  # python benchmarks/profile_step.py: Python put benchmarks/ first on sys.path
    import meta_step  # pylint: disable=import-error


def cpu_planes(logdir):
    """The host CPU planes (XPlane protos) of the traces in a profiler folder."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel

    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        yield from (plane for plane in space.planes if plane.name.startswith("/host:CPU"))


def op_times(logdir, counts=None):
    """`{op type: total microseconds}` of the TF ops in a profiler trace folder.

    `counts`, a `collections.Counter`, if given, receives each op type's
    number of executions.
    """
    totals = collections.Counter()
    for plane in cpu_planes(logdir):
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue  # the executor's threads; Eigen pool lines repeat the work
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # Op events are "op_name:OpType"; skip "Class::Method" markers.
                if ":" in name and "::" not in name:
                    totals[name.rsplit(":", 1)[1]] += event.duration_ps / 1e6
                    if counts is not None:
                        counts[name.rsplit(":", 1)[1]] += 1
    return totals


def _stat_values(plane, event):
    values = {}
    for stat in event.stats:
        name = plane.stat_metadata[stat.metadata_id].name
        if stat.HasField("ref_value"):
            values[name] = plane.stat_metadata[stat.ref_value].name
        elif stat.HasField("str_value"):
            values[name] = stat.str_value
        else:
            values[name] = stat.int64_value or stat.uint64_value
    return values


def memory_peak(logdir, top):
    """The allocator's peak, the largest tensors alive at the recorded peak, and the allocator's rounding.

    Replays the trace's `MemoryAllocation` / `MemoryDeallocation` events in
    time order (matched by address) and keeps the live set where the sum of
    requested bytes is largest. At the event where the allocator's bytes in
    use are highest it also sums the live set's requested bytes and the
    chunk bytes the allocator handed out for them: TensorFlow's best-fit
    allocator gives a request a whole free chunk when the chunk is under
    twice the request and under 128 MiB larger (its internal fragmentation
    bound), so a tensor's chunk can exceed it by less than the smaller of
    its size and 128 MiB. What the allocator holds beyond the chunks was
    allocated before the trace or outside the recorded events.
    """
    events, allocator_peak = [], 0
    for plane in cpu_planes(logdir):
        for line in plane.lines:
            for event in line.events:
                kind = plane.event_metadata[event.metadata_id].name
                if kind in ("MemoryAllocation", "MemoryDeallocation"):
                    values = _stat_values(plane, event)
                    allocator_peak = max(allocator_peak, values.get("peak_bytes_in_use", 0))
                    events.append((line.timestamp_ns * 1000 + event.offset_ps, kind, values))
    events.sort(key=lambda item: item[0])
    live, live_bytes, peak_bytes, peak_live = {}, 0, 0, {}
    in_use_peak, at_in_use_peak = -1, {}
    for _, kind, values in events:
        address = values.get("addr")
        if kind == "MemoryAllocation":
            live[address] = values
            live_bytes += values.get("requested_bytes", 0)
        elif address in live:
            live_bytes -= live.pop(address).get("requested_bytes", 0)
        if live_bytes > peak_bytes:
            peak_bytes, peak_live = live_bytes, dict(live)
        # "bytes_allocated" is the allocator's bytes in use after the event.
        if kind == "MemoryAllocation" and values.get("bytes_allocated", 0) > in_use_peak:
            in_use_peak = values.get("bytes_allocated", 0)
            at_in_use_peak = {
                "op": values.get("tf_op", "?"), "shape": values.get("shape", "?"),
                "requested": sum(v.get("requested_bytes", 0) for v in live.values()),
                "chunks": sum(v.get("allocation_bytes", 0) for v in live.values())}
    largest = sorted(peak_live.values(), key=lambda v: -v.get("requested_bytes", 0))[:top]
    mib = 2.0 ** 20
    return {"allocator_peak_mib": round(allocator_peak / mib, 1),
            "recorded_live_peak_mib": round(peak_bytes / mib, 1),
            "largest_live_at_peak": [
                {"op": v.get("tf_op", "?"), "shape": v.get("shape", "?"),
                 "mib": round(v.get("requested_bytes", 0) / mib, 1),
                 "chunk_mib": round(v.get("allocation_bytes", 0) / mib, 1)} for v in largest],
            "at_allocator_peak": {
                "allocation": f"{at_in_use_peak.get('op', '?')} {at_in_use_peak.get('shape', '?')}",
                "in_use_mib": round(max(in_use_peak, 0) / mib, 1),
                "live_requested_mib": round(at_in_use_peak.get("requested", 0) / mib, 1),
                "live_chunks_mib": round(at_in_use_peak.get("chunks", 0) / mib, 1)}}


def main():
    memory = "--memory" in sys.argv[1:]
    experiment, options = meta_step.parse(
        [arg for arg in sys.argv[1:] if not arg.startswith("--top") and arg != "--memory"])
    top_count = [int(arg.split("=", 1)[1]) for arg in sys.argv[1:] if arg.startswith("--top=")]
    top_count = top_count[-1] if top_count else 12
    if options.cores:
        meta_step.pin_cores(options.cores)  # before TensorFlow sizes its thread pools
    meta_step.setup_process(experiment)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    learner = meta_step.build_learner(experiment, options)
    batch = meta_step.random_batch(experiment, options)
    model = experiment.model
    meta_batch_size = experiment.episodes.meta_batch_size
    step = tf.function(learner.train_step)
    for _ in range(max(1, options.warmup)):
        float(step(batch)["loss"])
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    subnets = model.mgaug.num_subnets if model.mgaug.enabled else 0
    if memory:
        # Level 3 records the allocator's events (with the producing op).
        tf.profiler.experimental.start(
            logdir, options=tf.profiler.experimental.ProfilerOptions(host_tracer_level=3))
        float(step(batch)["loss"])
        tf.profiler.experimental.stop()
        print(json.dumps({"kind": "memory_profile", "learner": model.learner.name,
                          "meta_batch_size": meta_batch_size,
                          "num_subnets": subnets, "recompute": model.learner.recompute,
                          **memory_peak(logdir, top_count)}))
        return
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(options.steps):
        float(step(batch)["loss"])
    wall = (time.perf_counter() - start) / options.steps
    tf.profiler.experimental.stop()
    counts = collections.Counter()
    totals = op_times(logdir, counts)
    op_total = sum(totals.values())
    top = [{"op": op, "share": round(us / op_total, 3),
            "ms_per_step": round(us / 1e3 / options.steps, 1),
            "calls_per_step": counts[op] / options.steps}
           for op, us in totals.most_common(top_count)]
    print(json.dumps({"kind": "profile", "learner": model.learner.name,
                      "backbone": model.backbone.name, "dtype": model.backbone.dtype,
                      "meta_batch_size": meta_batch_size,
                      "image_size": experiment.data.image_size, "num_subnets": subnets,
                      "recompute": model.learner.recompute,
                      "wall_s_per_step": round(wall, 3),
                      "op_s_per_step": round(op_total / 1e6 / options.steps, 3),
                      "conv_share": round(sum(us for op, us in totals.items()
                                              if "Conv2D" in op) / op_total, 3),
                      "usable_cores": len(os.sched_getaffinity(0)), "top_ops": top}))


if __name__ == "__main__":
    main()
