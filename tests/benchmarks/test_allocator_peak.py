"""meta_step.py's allocator peak: the chunks held for the step's tensors, reset per configuration."""

import tensorflow as tf

import mgaug_tf
from benchmarks import meta_step


def _table(record):
    machine = {"kind": "machine", "cpu_count": 2, "usable_cores": record["usable_cores"],
               "tensorflow": "2", "conv_peak_gflops": 100.0, "conv_probe": "conv2d"}
    return meta_step.markdown([machine, record], "command")


def _measure(image_size):
    experiment, options = meta_step.parse([
        "--learner=maml", "--mgaug=none", f"--image_size={image_size}", "--channels=1",
        "--filters=64", "--meta_batch_size=1", "--inner_steps=1", "--steps=1", "--warmup=1"])
    mgaug_tf.configure_tensorflow()
    return meta_step.measure_step(experiment, options)


def test_allocator_peak_holds_the_query_activations_and_is_reset_per_configuration():
    large, small = _measure(32), _measure(16)
    # Second-order MAML's peak holds at least three first-layer activations of
    # the 75 queries (the convolution's and batch norm's outputs and the
    # max-pool's gradient, as profile_step.py --memory lists them).
    activation_mib = 75 * 32 * 32 * 64 * 4 / 2 ** 20
    assert large["allocator_peak_mib"] >= 3 * activation_mib
    # Measured after the larger configuration in the same process: a peak
    # that was not reset would read at least the larger one's. Both include
    # what the process already held at the reset, so the margin is in
    # activations.
    assert small["allocator_peak_mib"] < large["allocator_peak_mib"] - 2 * activation_mib
    table = _table(large)
    assert "allocator peak MiB (min-max)" in table
    peak = f"{large['allocator_peak_mib']:.0f}"
    assert f"| {peak} ({peak}-{peak}) |" in table


def test_a_device_without_allocator_statistics_leaves_the_field_out(monkeypatch):
    """TensorFlow keeps CPU statistics only with oneDNN's allocator; elsewhere the reset raises."""
    def untracked(device):
        raise ValueError(f"Memory statistics not tracked for {device}")

    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", untracked)
    record = _measure(16)
    assert "allocator_peak_mib" not in record and record["median_step_s"] > 0
    # The column stays, empty: the import column's cell is followed by an empty one.
    assert f"({record['import_rss_mib']:.0f}) |  |" in _table(record)


def test_an_allocator_that_counts_nothing_leaves_the_field_out(monkeypatch):
    """oneDNN's system allocator takes the reset and then reads a peak of 0."""
    monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                        lambda device: {"current": 0, "peak": 0})
    record = _measure(16)
    assert "allocator_peak_mib" not in record and record["median_step_s"] > 0
