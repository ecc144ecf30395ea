"""meta_step.py's command line and suites: config flags, --dtype, the suites' rows, --select."""

import dataclasses

import pytest
from absl import flags as absl_flags

from benchmarks import meta_step
from mgaug_tf import config, presets


def _configs(rows):
    return [config.override(meta_step.BASE, row.overrides) for row in rows]


def test_parse_applies_only_the_given_flags_on_the_benchmarks_base():
    experiment, options = meta_step.parse([])
    assert experiment == meta_step.BASE
    assert experiment.model.backbone.filters == (64,) and experiment.data.image_size == 84
    assert (options.steps, options.warmup, options.cores, options.channels,
            options.measure, options.suite) == (10, 2, 0, 3, "step", None)
    experiment, options = meta_step.parse(
        ["--learner=fomaml", "--backbone=resnet12", "--filters=64,160,320,640",
         "--fused_batch_norm=off", "--resolutions=84,64,48", "--recompute", "--channels=1",
         "--steps=3"])
    assert experiment == config.override(meta_step.BASE, {
        "model.learner.name": "fomaml", "model.backbone.name": "resnet12",
        "model.backbone.filters": (64, 160, 320, 640),
        "model.backbone.fused_batch_norm": "off", "model.mgaug.resolutions": (84, 64, 48),
        "model.learner.recompute": True, "data.channels": 1})
    # --channels is mgaug-train's flag; the benchmark's images take its value.
    assert (options.channels, options.steps) == (1, 3)
    # A child process gets back the same config from its flags.
    assert meta_step.parse(meta_step.config_flags(experiment))[0] == experiment
    with pytest.raises(absl_flags.Error):
        meta_step.parse(["--resnet_widths=64,160,320,640"])  # gone: --filters
    with pytest.raises(absl_flags.Error):
        meta_step.parse(["--fused_batch_norm=true"])  # now auto/on/off


def test_dtype_suite_pairs_float32_and_bfloat16_for_each_learner_and_mgaug_setting():
    rows = meta_step.SUITES["dtype"]
    assert len(rows) == 12
    keys = {(c.model.learner.name, c.model.mgaug.num_subnets if c.model.mgaug.enabled else 0,
             c.model.backbone.dtype) for c in _configs(rows)}
    assert keys == {(learner, k, dtype) for learner in ("maml", "fomaml", "protonet")
                    for k in (0, 3) for dtype in ("float32", "mixed_bfloat16")}


def test_targets_suite_is_the_performance_issues_table_on_one_pinned_core():
    rows = meta_step.SUITES["targets"]
    assert all(row.bench == {"cores": 1} for row in rows)
    table = [(c.model.learner.name, c.model.mgaug.num_subnets if c.model.mgaug.enabled else 0,
              c.episodes.meta_batch_size, c.model.mgaug.resolutions)
             for c in _configs(rows)]
    assert table == [(name, k, 1 if name == "protonet" else 4, resolutions)
                     for name in ("maml", "fomaml", "protonet")
                     for k, resolutions in ((0, ()), (3, ()), (3, (84, 64, 48)))]
    for experiment in _configs(rows):
        name = experiment.model.learner.name
        if experiment.model.mgaug.enabled:  # the released MGAug, with or without resizing
            released = presets.released_mgaug(name, 84, parity=True)
            assert dataclasses.replace(experiment.model.mgaug,
                                       resolutions=released.resolutions) == released
    cores = meta_step.SUITES["cores"]
    assert [row.bench for row in cores] == [{"cores": 1}, {"cores": 2}]


def test_scaling_suite_varies_one_setting_of_the_base_at_a_time():
    rows = _configs(meta_step.SUITES["scaling"])
    assert len(rows) == len(set(map(repr, rows)))  # BASE runs once for every axis
    axes = meta_step.scaling_axis_rows()
    assert {axis: [value for _, value in points] for axis, points in axes.items()} == {
        "inner steps": [1, 5, 10, 20], "inner steps, recompute": [1, 5, 10, 20],
        "tasks per step": [1, 4, 16], "K": [0, 1, 3, 5], "image px": [42, 84]}
    base = config.override(meta_step.BASE, {"model.mgaug.strategy": "none"})
    shared = {index for points in axes.values() for index, value in points
              if rows[index] == base}
    assert len(shared) == 1
    assert rows[dict(map(reversed, axes["inner steps, recompute"]))[20]].model.learner.recompute
    assert rows[dict(map(reversed, axes["K"]))[5]].model.mgaug.num_subnets == 5


def test_released_rows_are_the_named_preset_with_parity():
    released = _configs(meta_step.SUITES["released"])
    assert [c.model.learner.name for c in released] == ["maml", "fomaml", "protonet"]
    for experiment in released:
        name = experiment.model.learner.name
        assert experiment.model.mgaug == presets.released_mgaug(name, 84, parity=True)
        assert experiment.episodes.meta_batch_size == (1 if name == "protonet" else 4)
    assert [c.model.mgaug.keep_min for c in released] == [0.98, 0.98, 0.97]


def test_select_keeps_matching_rows_and_compares_unset_keys_with_the_flags():
    experiment, options = meta_step.parse(["--dtype=float32"])
    rows = meta_step.SUITES["dtype"]
    chosen = meta_step.select_rows(rows, "learner=maml,dtype=mixed_bfloat16", experiment,
                                   options)
    assert [(row.overrides["model.mgaug.strategy"], row.overrides["model.backbone.dtype"])
            for row in chosen] == [("none", "mixed_bfloat16"), ("catfish", "mixed_bfloat16")]
    # `recompute` is set by no dtype row: compared with the command line's (False).
    assert meta_step.select_rows(rows, "recompute=False", experiment, options) == rows
    # List values keep their commas; bench settings select too.
    targets = meta_step.SUITES["targets"]
    drawn = meta_step.select_rows(targets, "learner=protonet,resolutions=84,64,48",
                                  experiment, options)
    assert [row.overrides["model.mgaug.keep_min"] for row in drawn] == [0.97]
    cores = meta_step.SUITES["cores"]
    assert meta_step.select_rows(cores, "cores=2", experiment, options) == [cores[1]]
    with pytest.raises(ValueError, match="no row"):
        meta_step.select_rows(rows, "learner=anil", experiment, options)
    with pytest.raises(ValueError, match="no row"):
        meta_step.select_rows(rows, "recompute=true", experiment, options)
    with pytest.raises(ValueError, match="key=value"):
        meta_step.select_rows(rows, "colour=red", experiment, options)
    with pytest.raises(ValueError, match="key=value"):
        meta_step.select_rows(rows, "maml", experiment, options)


def test_dtype_flag_builds_a_bfloat16_network_with_float32_weights():
    experiment, options = meta_step.parse(
        ["--learner=fomaml", "--filters=4", "--image_size=16", "--channels=1",
         "--inner_steps=1", "--meta_batch_size=1", "--dtype=mixed_bfloat16", "--mgaug=none"])
    learner = meta_step.build_learner(experiment, options)
    assert learner.network.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in learner.trainable_variables)
    assert all(norm.fused == "auto" for _, norm, _, _ in learner.network.backbone.blocks)
