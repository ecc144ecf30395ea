"""profile_step.py --memory: where a meta-step's memory peaks, from the allocator's events."""

import json
import pathlib
import subprocess
import sys

from benchmarks import profile_step

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_memory_profile_names_the_query_activations_alive_at_the_peak():
    result = subprocess.run(
        [sys.executable, "benchmarks/profile_step.py", "--learner=maml", "--mgaug=none",
         "--image_size=28", "--channels=1", "--meta_batch_size=1", "--memory", "--top=3"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["kind"] == "memory_profile" and record["num_subnets"] == 0
    assert 0 < record["recorded_live_peak_mib"] <= record["allocator_peak_mib"]
    largest = record["largest_live_at_peak"]
    assert len(largest) == 3
    assert [t["mib"] for t in largest] == sorted((t["mib"] for t in largest), reverse=True)
    # Second-order MAML peaks in the query pass's backward: its first-layer
    # activations (5-way x 15 queries, 28 px, 64 channels, float32) lead.
    assert largest[0]["shape"] == "[75,28,28,64]"
    assert largest[0]["mib"] == round(75 * 28 * 28 * 64 * 4 / 2 ** 20, 1)
    assert all(t["chunk_mib"] >= t["mib"] for t in largest)
    at_peak = record["at_allocator_peak"]
    assert (at_peak["live_requested_mib"] <= at_peak["live_chunks_mib"]
            <= at_peak["in_use_mib"] <= record["allocator_peak_mib"])


def _write_trace(folder, allocations, peak_before=0):
    """An XPlane trace of allocator events: `(kind, addr, op, requested, chunk, in_use)`.

    `peak_before` is the allocator's peak from before the trace (its warm-up).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    kinds = {"MemoryAllocation": 1, "MemoryDeallocation": 2}
    for name, key in kinds.items():
        plane.event_metadata[key].id, plane.event_metadata[key].name = key, name
    stat_ids = {}
    for index, name in enumerate(["addr", "tf_op", "shape", "requested_bytes",
                                  "allocation_bytes", "bytes_allocated", "peak_bytes_in_use"]):
        stat_ids[name] = index + 10
        plane.stat_metadata[index + 10].id, plane.stat_metadata[index + 10].name = index + 10, name
    line = plane.lines.add(name="allocator", timestamp_ns=0)
    peak = peak_before
    for offset, (kind, addr, op, requested, chunk, in_use) in enumerate(allocations):
        peak = max(peak, in_use)
        event = line.events.add(metadata_id=kinds[kind], offset_ps=offset * 1000)
        for name, value in [("addr", addr), ("requested_bytes", requested),
                            ("allocation_bytes", chunk), ("bytes_allocated", in_use),
                            ("peak_bytes_in_use", peak)]:
            event.stats.add(metadata_id=stat_ids[name], uint64_value=value)
        for name, value in [("tf_op", op), ("shape", "[75,84,84,64]")]:
            event.stats.add(metadata_id=stat_ids[name], str_value=value)
    path = pathlib.Path(folder) / "host.xplane.pb"
    path.write_bytes(space.SerializeToString())


def test_memory_peak_separates_the_allocators_chunks_from_the_requested_bytes(tmp_path):
    mib = 2 ** 20
    # 8 MiB held before the trace. The requested bytes peak with conv and norm
    # alive; the allocator's bytes in use peak later, when a 90 MiB tensor is
    # handed a 160 MiB chunk whole (see `memory_peak`).
    _write_trace(tmp_path, [
        ("MemoryAllocation", 1, "conv", 100 * mib, 100 * mib, 108 * mib),
        ("MemoryAllocation", 2, "norm", 100 * mib, 100 * mib, 208 * mib),
        ("MemoryDeallocation", 1, "", 100 * mib, 100 * mib, 108 * mib),
        ("MemoryAllocation", 3, "pool_grad", 90 * mib, 160 * mib, 268 * mib),
        ("MemoryDeallocation", 3, "", 90 * mib, 160 * mib, 108 * mib),
    ], peak_before=300 * mib)
    record = profile_step.memory_peak(str(tmp_path), top=2)
    # The allocator's own peak statistic includes the warm-up's.
    assert record["allocator_peak_mib"] == 300.0
    assert record["recorded_live_peak_mib"] == 200.0
    assert [(t["op"], t["mib"], t["chunk_mib"]) for t in record["largest_live_at_peak"]] == [
        ("conv", 100.0, 100.0), ("norm", 100.0, 100.0)]
    assert record["at_allocator_peak"] == {
        "allocation": "pool_grad [75,84,84,64]", "in_use_mib": 268.0,
        "live_requested_mib": 190.0, "live_chunks_mib": 260.0}
