"""meta_step.py's command line and suites: config flags, --dtype, the suites' rows, --select."""

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


def test_targets_suite_is_the_targets_table_on_pinned_cores():
    rows = meta_step.SUITES["targets"]
    assert all(row.bench["cores"] in (1, 2) for row in rows)
    assert [row for row in rows if row.bench["cores"] == 2] == [
        meta_step.Row({"model.learner.name": "maml", "model.mgaug.strategy": "none"},
                      {"cores": 2})]
    issue = [(c.model.learner.name, c.model.mgaug.num_subnets if c.model.mgaug.enabled else 0,
              c.episodes.meta_batch_size, c.model.mgaug.resolutions)
             for c in _configs(rows[:7])]
    assert issue == [("maml", 0, 4, ()), ("maml", 3, 4, ()), ("fomaml", 0, 4, ()),
                     ("fomaml", 3, 4, ()), ("protonet", 0, 1, ()), ("protonet", 3, 1, ()),
                     ("protonet", 3, 1, (84, 64, 48))]
    assert all(meta_step.Row(overrides, {"cores": 1}) in rows
               for overrides in meta_step.RELEASED_ROWS)


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
    assert len(drawn) == 2
    assert meta_step.select_rows(targets, "cores=2", experiment, options) == [
        row for row in targets if row.bench["cores"] == 2]
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
