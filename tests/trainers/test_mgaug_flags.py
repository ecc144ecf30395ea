"""MGAug from the config: one builder for the CLI and the benchmark, errors that name the flag."""

import dataclasses

import pytest

from mgaug_tf import config as config_lib
from mgaug_tf import factory
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import GLYPHS


def mgaug(**overrides):
    return dataclasses.replace(config_lib.MGAugConfig(strategy="catfish"), **overrides)


def test_build_augmentation_gives_the_released_setting():
    augmentation = factory.build_augmentation(mgaug(
        num_subnets=3, keep_min=0.98, keep_max=1.0, resolutions=(84, 64, 48),
        flatten_head="reference"), 84, seed=7)
    assert augmentation.strategy_name == "catfish" and augmentation.num_subnets == 3
    assert (augmentation.keep_ratio_sampler.keep_min,
            augmentation.keep_ratio_sampler.keep_max) == (0.98, 1.0)
    assert augmentation.resolutions == (84, 64, 48) and augmentation.reduction == "sum"
    assert (augmentation.resize_method, augmentation.flatten_head) == ("align_corners",
                                                                       "reference")
    assert augmentation.seed == 7 and not augmentation.parity
    parity = factory.build_augmentation(mgaug(parity=True, resolutions=(28, 21, 16)), 28)
    assert parity.parity
    assert factory.build_augmentation(config_lib.MGAugConfig(), 84) is None  # strategy none


@pytest.mark.parametrize("overrides, paths, message", [
    (dict(resolutions=(84, 96)), ("model.mgaug.resolutions",), "resolutions=(84, 96)"),
    (dict(keep_min=0.99, keep_max=0.98), ("model.mgaug.keep_min", "model.mgaug.keep_max"),
     "keep_range=(0.99, 0.98)"),
    (dict(parity=True, resize="half_pixel"),
     ("model.mgaug.parity", "model.mgaug.resize", "model.mgaug.flatten_head"), "parity"),
    (dict(num_subnets=0), ("model.mgaug.num_subnets",), "num_subnets=0"),
])
def test_build_augmentation_names_the_config_fields(overrides, paths, message):
    with pytest.raises(config_lib.ConfigFieldError) as error:
        factory.build_augmentation(mgaug(**overrides), 84)
    assert error.value.paths == paths and message in str(error.value)


@pytest.mark.parametrize("args, message", [
    (["--image_size=64", "--learner=maml", "--resolutions=64,48"],
     "--mgaug_flatten_head=none: "),
    (["--image_size=64", "--learner=fomaml", "--pooling=flatten", "--resolutions=64"],
     "mgaug_flatten_head"),
    (["--image_size=64", "--resolutions=96"], "--resolutions=96: MGAug: "),
    (["--mgaug_parity", "--mgaug_resize=half_pixel"],
     "--mgaug_parity --mgaug_resize=half_pixel --mgaug_flatten_head=none: "),
    (["--image_size=32", "--resolutions=32,15", "--mgaug_flatten_head=reference"],
     "--resolutions=32,15: "),
])
def test_model_errors_name_the_flag_before_any_data_is_read(run_main, args, message):
    code, stderr, model_dir = run_main(*GLYPHS, "--mgaug=catfish", "--dataset=miniimagenet",
                                       "--data_dir=/no/such/folder", *args)
    assert code == 2 and message in stderr, stderr
    assert "data_dir" not in stderr  # refused before the data was looked at
    assert "Traceback" not in stderr and not model_dir.exists()


@pytest.mark.parametrize("extra", [["--mgaug_flatten_head=reference"], ["--mgaug_parity"],
                                   ["--learner=protonet"], ["--pooling=avg"]])
def test_flatten_head_resolutions_build_where_the_rule_allows(extra):
    config = run_flags.parse_config([*GLYPHS, "--image_size=32", "--mgaug=catfish",
                                     "--resolutions=24", *extra])
    learner = factory.build_learner(config.model, (32, 32, 1))
    assert learner.augmentation.resolutions == (24,)


def test_run_builds_the_released_setting_with_a_flatten_head():
    """MAML, Conv-4 flatten head, catfish K = 3, keep (0.98, 1), resolutions 1.0/0.76/0.57."""
    config = run_flags.parse_config([*GLYPHS, "--image_size=32", "--mgaug=catfish",
                                     "--num_subnets=3", "--keep_min=0.98",
                                     "--resolutions=32,24,18", "--mgaug_flatten_head=reference"])
    learner = factory.build_learner(config.model, (32, 32, 1))
    assert learner.augmentation.resolutions == (32, 24, 18)
    assert learner.augmentation.resize_method == "align_corners"
    assert learner.augmentation.flatten_head == "reference"


def test_width_execution_reaches_mgaug_and_may_change_on_resume():
    assert factory.build_augmentation(mgaug(strategy="random_width"), 84).width_execution \
        == "auto"
    masked = factory.build_augmentation(mgaug(strategy="random_width",
                                              width_execution="masked"), 84)
    assert masked.width_execution == "masked"
    assert not config_lib.FIELDS["model.mgaug.width_execution"].fixed  # the same function
    with pytest.raises(config_lib.ConfigFieldError, match="sliced") as error:
        factory.build_augmentation(mgaug(width_execution="sliced"), 84)
    assert error.value.paths == ("model.mgaug.width_execution",)
