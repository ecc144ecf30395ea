"""The MGAug flags: one builder for run.py and the benchmark, clear errors before any work."""

import argparse

import pytest
from absl import flags

from tests.trainers.conftest import GLYPHS
from trainers import flags as run_flags
from trainers import run  # noqa: F401  (defines the CLI's flags)

FLAGS = flags.FLAGS


def namespace(**overrides):
    """The MGAug flags' defaults as an argparse namespace, as the benchmark parses them."""
    parser = argparse.ArgumentParser()
    run_flags.add_mgaug_arguments(parser)
    values = parser.parse_args([])
    for name, value in overrides.items():
        setattr(values, name, value)
    return values


def test_benchmark_arguments_have_the_flags_names_defaults_and_choices():
    parser = argparse.ArgumentParser()
    run_flags.add_mgaug_arguments(parser)
    defaults = vars(parser.parse_args([]))
    assert set(defaults) == set(run_flags.MGAUG_FLAGS)
    for name in run_flags.MGAUG_FLAGS:
        assert defaults[name] == FLAGS[name].default, name
    parsed = parser.parse_args(["--mgaug=catfish", "--keep_min=0.98", "--resolutions=84,64,48",
                                "--mgaug_parity", "--mgaug_flatten_head=reference"])
    assert parsed.resolutions == ["84", "64", "48"] and parsed.mgaug_parity
    with pytest.raises(SystemExit):
        parser.parse_args(["--mgaug_resize=bicubic"])


def test_build_augmentation_gives_the_released_setting():
    augmentation = run_flags.build_augmentation(namespace(
        mgaug="catfish", num_subnets=3, keep_min=0.98, keep_max=1.0,
        resolutions=["84", "64", "48"], mgaug_flatten_head="reference"), 84, seed=7)
    assert augmentation.strategy_name == "catfish" and augmentation.num_subnets == 3
    assert (augmentation.keep_ratio_sampler.keep_min,
            augmentation.keep_ratio_sampler.keep_max) == (0.98, 1.0)
    assert augmentation.resolutions == (84, 64, 48) and augmentation.reduction == "sum"
    assert (augmentation.resize_method, augmentation.flatten_head) == ("align_corners",
                                                                       "reference")
    assert augmentation.seed == 7 and not augmentation.parity
    parity = run_flags.build_augmentation(namespace(mgaug="catfish", mgaug_parity=True,
                                                    resolutions=["28", "21", "16"]), 28)
    assert parity.parity and parity.flatten_head == "reference"
    assert run_flags.build_augmentation(namespace(), 84) is None  # --mgaug=none


@pytest.mark.parametrize("overrides, message", [
    (dict(resolutions=["84", "96"]), "--resolutions=84,96: [96] px exceed the 84 px images"),
    (dict(resolutions=["84", "15"]), "--resolutions=84,15: [15] px leave an empty feature map"),
    (dict(keep_min=0.99, keep_max=0.98), "--keep_min=0.99 --keep_max=0.98"),
    (dict(mgaug_parity=True, mgaug_resize="half_pixel"), "--mgaug_parity with "
                                                         "--mgaug_resize=half_pixel"),
])
def test_build_augmentation_names_the_bad_flag(overrides, message):
    with pytest.raises(ValueError) as error:
        run_flags.build_augmentation(namespace(mgaug="catfish", **overrides), 84)
    assert message in str(error.value)


@pytest.mark.parametrize("args, message", [
    (["--learner=maml", "--resolutions=64,48"], "--resolutions=64,48 with a flatten head "
                                                "\\(--pooling=flatten, --learner=maml\\)"),
    (["--learner=fomaml", "--pooling=flatten", "--resolutions=64"],
     "Add --mgaug_flatten_head=reference"),
    (["--mgaug_parity", "--mgaug_resize=half_pixel"], "--mgaug_parity reproduces the "
                                                      "reference code"),
    (["--mgaug_flatten_head=crop"], "--mgaug_flatten_head"),
])
def test_mgaug_flag_parsing_errors_name_the_flag(args, message):
    with pytest.raises(flags.Error, match=message):
        FLAGS(["run.py", "--model_dir=unused", *args])
    FLAGS.unparse_flags()


def test_flatten_head_resolutions_with_slicing_parse():
    for extra in (["--mgaug_flatten_head=reference"], ["--mgaug_parity"],
                  ["--learner=protonet"], ["--pooling=avg"]):
        FLAGS(["run.py", "--model_dir=unused", "--resolutions=64", *extra])
        FLAGS.unparse_flags()


def test_cli_refuses_an_empty_feature_map_before_any_work(run_main):
    code, stderr, model_dir = run_main(*GLYPHS, "--image_size=32", "--mgaug=catfish",
                                       "--resolutions=32,15", "--mgaug_flatten_head=reference")
    assert code == 2 and "--resolutions=32,15 must lie between 16 px and the 32 px" in stderr
    assert "Traceback" not in stderr and not model_dir.exists()


def test_run_builds_the_released_setting_with_a_flatten_head():
    """MAML, Conv-4 flatten head, catfish K = 3, keep (0.98, 1), resolutions 1.0/0.76/0.57."""
    FLAGS(["run.py", "--model_dir=unused", *GLYPHS, "--image_size=32", "--mgaug=catfish",
           "--num_subnets=3", "--keep_min=0.98", "--resolutions=32,24,18",
           "--mgaug_flatten_head=reference"])
    try:
        learner = run._build_learner((32, 32, 1))  # pylint: disable=protected-access
    finally:
        FLAGS.unparse_flags()
    assert learner.network.flatten_head == "reference"
    assert learner.augmentation.resolutions == (32, 24, 18)
    assert learner.augmentation.resize_method == "align_corners"


def test_width_execution_flag_reaches_mgaug():
    assert run_flags.build_augmentation(namespace(mgaug="random_width"), 84).width_execution \
        == "auto"
    masked = run_flags.build_augmentation(namespace(
        mgaug="random_width", mgaug_width_execution="masked"), 84)
    assert masked.width_execution == "masked"
    assert "mgaug_width_execution" not in run_flags.MODEL_FLAGS  # the same function either way
    with pytest.raises(ValueError, match="width_execution='sliced' needs channel masks"):
        run_flags.build_augmentation(namespace(mgaug="catfish", mgaug_width_execution="sliced"),
                                     84)
