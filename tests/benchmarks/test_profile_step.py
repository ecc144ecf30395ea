"""profile_step.py --memory: where a meta-step's memory peaks, from the allocator's events."""

import json
import pathlib
import subprocess
import sys

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
