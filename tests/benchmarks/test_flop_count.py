"""meta_step.graph_gflops: the loop-aware FLOP count against TF's profiler on the unrolled step."""

import pytest
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer, option_builder

from benchmarks import meta_step
from mgaug_tf import config

SMALL = ["--filters=8", "--image_size=28", "--channels=1", "--meta_batch_size=2",
         "--inner_steps=2"]


def _profiler_gflops(graph):
    """TF's profiler's count (`model_analyzer`), which does not look inside loops."""
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return model_analyzer.profile(graph, options=options).total_float_ops / 1e9


def _step_graph(experiment, options, unroll):
    learner = meta_step.build_learner(experiment, options)
    learner.unroll_loops = unroll
    batch = meta_step.random_batch(experiment, options)
    return tf.function(learner.train_step).get_concrete_function(batch).graph


# Each case traces a step twice (looped and unrolled): the default run keeps one.
@pytest.mark.parametrize("flags", [
    ["--learner=maml", "--mgaug=catfish", "--num_subnets=2"],
    pytest.param(["--learner=fomaml", "--mgaug=random_param", "--num_subnets=1"],
                 marks=pytest.mark.slow),
    pytest.param(["--learner=protonet", "--mgaug=catfish", "--num_subnets=2"],
                 marks=pytest.mark.slow),
    pytest.param(["--learner=maml", "--mgaug=none", "--recompute"], marks=pytest.mark.slow),
], ids=["maml-catfish", "fomaml-random_param", "protonet-catfish", "maml-recompute"])
def test_loop_graph_count_equals_the_profilers_count_of_the_unrolled_step(flags):
    experiment, options = meta_step.parse(SMALL + flags)
    looped = meta_step.graph_gflops(_step_graph(experiment, options, unroll=False))
    unrolled_graph = _step_graph(experiment, options, unroll=True)
    # The same counting rule on both graphs, and the profiler's on the
    # unrolled one: only the loops' own scalar index arithmetic differs.
    assert looped == pytest.approx(meta_step.graph_gflops(unrolled_graph), rel=1e-6)
    if "--recompute" not in flags:  # the profiler does not enter recompute's functions
        assert looped == pytest.approx(_profiler_gflops(unrolled_graph), rel=1e-6)
    else:
        assert looped > _profiler_gflops(unrolled_graph)
    # The profiler alone, on the loop graph, misses every task's work.
    assert _profiler_gflops(_step_graph(experiment, options, unroll=False)) < 0.6 * looped


@pytest.mark.parametrize("flags", [
    ["--learner=protonet", "--mgaug=catfish", "--num_subnets=2"],
    pytest.param(["--learner=maml", "--mgaug=catfish", "--num_subnets=2",
                  "--mgaug_flatten_head=reference"], marks=pytest.mark.slow),
], ids=["protonet-catfish", "maml-catfish"])
def test_drawn_resolutions_count_as_the_steps_traced_at_each_fixed_resolution(flags):
    experiment, options = meta_step.parse(SMALL + flags + ["--resolutions=28,20,16"])
    learner = meta_step.build_learner(experiment, options)
    batch = meta_step.random_batch(experiment, options)
    drawn = meta_step.graph_gflops(
        tf.function(learner.train_step).get_concrete_function(batch).graph)
    per_size = meta_step.resolution_gflops(learner, batch, drawn)
    assert sorted(per_size) == [16, 20, 28]
    assert drawn < per_size[16] < per_size[20] < per_size[28]
    # The pass-by-pass count equals the whole step traced with the size fixed,
    # but for the drawn step's own size draws (a scalar add per pass).
    passes = learner.tasks_per_replica * learner.augmentation.num_subnets
    for size, gflops in per_size.items():
        fixed = meta_step.step_gflops(
            config.override(experiment, {"model.mgaug.resolutions": (size,)}), options, batch)
        assert gflops - fixed == pytest.approx(passes * 1e-9, abs=1e-12)
    at_full_size = meta_step.step_gflops(
        config.override(experiment, {"model.mgaug.resolutions": ()}), options, batch)
    # At the image's own size only the resize's interpolation arithmetic adds.
    assert at_full_size < per_size[28] < 1.001 * at_full_size
