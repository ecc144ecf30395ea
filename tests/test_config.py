"""The typed config, the registry and the factory: types, paths, names and refusals."""

import dataclasses

import keras
import pytest

import mgaug_tf as mg
from mgaug_tf import config, factory, registry
from mgaug_tf_cli import flags as run_flags


@pytest.mark.parametrize("text, message", [
    ('{"model": {"learner": {"n_way": "five"}}}', "`n_way` must be an integer"),
    ('{"model": {"mgaug": {"keep_min": "x"}}}', "`keep_min` must be a number"),
    ('{"model": {"backbone": {"filters": 16}}}', "`filters` must be a tuple of integers"),
    ('{"data": {"image_size": 2.5}}', "`image_size` must be an integer or None"),
    ('{"model": 3}', "must be a JSON object"),
    ('{"model": {"mgaug": {"old_knob": 1}}}', r"unknown field\(s\) \['old_knob'\]"),
    ('{"model": {', "Expecting property name"),
])
def test_from_json_refuses_what_is_not_a_config_with_a_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        config.ExperimentConfig.from_json(text)


def test_lists_become_tuples_and_equal_configs_compare_equal():
    built = config.override(config.ExperimentConfig(), {"model.backbone.filters": [8],
                                                        "model.mgaug.resolutions": [28, 20]})
    assert built.model.backbone.filters == (8,) and built.model.mgaug.resolutions == (28, 20)
    assert config.ExperimentConfig.from_json(built.to_json()) == built
    with pytest.raises(mg.ArgumentError, match="`n_way` must be an integer"):
        config.LearnerConfig(n_way=True)  # a bool is not a count


def test_override_names_the_whole_path_of_a_missing_field():
    with pytest.raises(ValueError, match=r"ModelConfig has no field 'nope' \(in 'model.nope'\)"):
        config.override(config.ExperimentConfig(), {"model.nope": 1})


def test_config_field_errors_name_the_fields_and_keep_the_constructors_words():
    model = config.ModelConfig(mgaug=config.MGAugConfig("catfish", keep_min=0.9, keep_max=0.8))
    with pytest.raises(config.ConfigFieldError) as error:
        factory.build_learner(model)
    assert error.value.paths == ("model.mgaug.keep_min", "model.mgaug.keep_max")
    assert str(error.value).startswith("model.mgaug.keep_min, model.mgaug.keep_max: MGAug: ")
    assert "keep_range=(0.9, 0.8)" in error.value.message


@pytest.mark.parametrize("overrides, path", [
    ({"model.backbone.name": "vgg"}, "model.backbone.name"),
    ({"model.learner.name": "reptile"}, "model.learner.name"),
    ({"model.backbone.filters": (4, 8)}, "model.backbone.filters"),
    ({"model.backbone.name": "resnet12", "model.backbone.fused_batch_norm": "on"},
     "model.backbone.fused_batch_norm"),
    ({"model.learner.name": "protonet", "model.learner.recompute": True},
     "model.learner.recompute"),
    ({"model.learner.name": "protonet", "model.learner.log_before_adaptation": True},
     "model.learner.log_before_adaptation"),
    ({"model.learner.inner_lr": 0.0}, "model.learner.inner_lr"),
])
def test_unknown_names_and_refused_values_name_their_field(overrides, path):
    model = config.override(config.ExperimentConfig(), overrides).model
    with pytest.raises(config.ConfigFieldError) as error:
        factory.build_learner(model, (16, 16, 1))
    assert error.value.paths == (path,)


@pytest.mark.parametrize("overrides, path", [
    ({"optimizer.learning_rate": 0.0}, "optimizer.learning_rate"),
    ({"optimizer.decay_steps": 10, "optimizer.decay_rate": 0.0}, "optimizer.decay_rate"),
    ({"optimizer.name": "rmsprop"}, "optimizer.name"),
])
def test_build_optimizer_refusals_name_their_field(overrides, path):
    optimizer = config.override(config.ExperimentConfig(), overrides).optimizer
    with pytest.raises(config.ConfigFieldError) as error:
        factory.build_optimizer(optimizer)
    assert error.value.paths == (path,)


def test_inactive_mgaug_settings_do_not_block_a_resume():
    base = config.ExperimentConfig()
    changed = config.override(base, {"model.mgaug.keep_min": 0.5})
    assert config.differences(base, changed) == []  # MGAug off on both sides
    on = config.override(base, {"model.mgaug.strategy": "catfish"})
    assert [spec.path for spec, _, _ in config.differences(
        on, config.override(on, {"model.mgaug.keep_min": 0.5}))] == ["model.mgaug.keep_min"]


def test_a_registered_backbone_is_built_from_a_config_and_the_flags():
    def tiny(backbone_config, dtype=None, pooling=None):
        del pooling  # always global average pooling
        return keras.Sequential([keras.layers.Conv2D(backbone_config.filters[0], 3, dtype=dtype),
                                 keras.layers.GlobalAveragePooling2D(dtype=dtype)])

    registry.register_backbone("tiny_test", tiny)
    try:
        experiment = run_flags.parse_config(["--backbone=tiny_test", "--filters=6",
                                             "--learner=protonet", "--n_way=3"])
        learner = mg.build_learner(experiment.model, (16, 16, 1))
        assert isinstance(learner, mg.ProtoNet)
        assert learner.network.compute_output_shape((None, 16, 16, 1))[-1] == 6
    finally:
        registry._BACKBONES.pop("tiny_test")  # pylint: disable=protected-access


def test_every_section_field_has_a_doc_and_a_flag():
    for spec in config.FIELDS.values():
        assert spec.doc.strip() and spec.flag, spec.path
    # The model sections are what `build_learner` takes.
    assert {item.name for item in dataclasses.fields(config.ModelConfig)} == {
        "backbone", "learner", "mgaug"}


def test_override_refuses_a_path_set_whole_and_by_its_fields_and_leaves_the_input_alone():
    values = {"model.learner": {"inner_lr": 0.5}, "model.learner.n_way": 3}
    with pytest.raises(ValueError, match="'model.learner' both whole and by its fields"):
        config.override(config.ExperimentConfig(), values)
    assert values == {"model.learner": {"inner_lr": 0.5}, "model.learner.n_way": 3}
    with pytest.raises(ValueError, match="'model.learner.n_way' is a value, not a section"):
        config.override(config.ExperimentConfig(), {"model.learner.n_way.x": 3})


def test_sgd_momentum_that_keras_refuses_names_its_field():
    with pytest.raises(config.ConfigFieldError) as error:
        factory.build_optimizer(config.OptimizerConfig("sgd", momentum=1.5))
    assert error.value.paths == ("optimizer.momentum",)


def test_flagfile_accepts_the_two_argument_spelling():
    assert run_flags.expand_flagfiles(["--flagfile", "configs/demo.cfg"]) \
        == run_flags.expand_flagfiles(["--flagfile=configs/demo.cfg"])


def test_parallel_tasks_reaches_the_learner_and_changes_no_fixed_setting():
    model = config.override(config.ExperimentConfig(), {"model.learner.parallel_tasks": 3}).model
    assert factory.build_learner(model).parallel_tasks == 3
    assert not config.FIELDS["model.learner.parallel_tasks"].fixed  # a resume may change it
