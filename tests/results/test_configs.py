"""The result-reproduction configs (`configs/results/*.cfg`) parse and point at the shared data."""

import dataclasses

import pytest

from mgaug_tf_cli import flags as run_flags
from tests.results.conftest import REPO
CONFIGS = sorted((REPO / "configs" / "results").glob("*.cfg"))


def test_there_are_result_configs():
    assert {"omniglot_protonet_5w1s.cfg", "omniglot_fomaml_5w1s.cfg"} <= {c.name for c in CONFIGS}


def expected_settings(name):
    """(dataset, data_dir, image size, learner, MGAug strategy) a config's name promises."""
    if name.startswith("mini_subset_"):
        dataset, data_dir, size = "miniimagenet", "/tmp/miniimagenet_subset20", 84
        learner = name.split("_")[2]
    else:
        dataset, data_dir, size = "omniglot", "../shared/data/omniglot", 28
        learner = name.split("_")[1]
    strategy = "none"
    for candidate in ("catfish", "random_param", "random_width"):
        if candidate in name:
            strategy = candidate
    if name.endswith("_mgaug"):
        strategy = "catfish"
    return dataset, data_dir, size, learner, strategy


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_result_config_parses_with_its_data_and_a_tmp_model_dir(path, monkeypatch):
    monkeypatch.chdir(REPO)  # included --flagfile paths are relative to the repository
    config = run_flags.parse_config([f"--flagfile={path}"])
    dataset, data_dir, size, learner, strategy = expected_settings(path.stem)
    assert config.data.data_dir == data_dir
    assert config.runtime.model_dir.startswith("/tmp/runs/")  # outputs stay out of the repository
    assert (config.data.dataset, config.model.learner.n_way, config.episodes.k_shot,
            config.data.image_size) == (dataset, 5, 1, size)
    assert config.trainer.eval_episodes == 600 and config.model.mgaug.strategy == strategy
    assert config.model.learner.name == learner


def test_comparison_arms_differ_only_in_mgaug(monkeypatch):
    monkeypatch.chdir(REPO)
    settings = {}
    for path in sorted((REPO / "configs" / "results").glob("omniglot_protonet_compare*.cfg")):
        config = run_flags.parse_config([f"--flagfile={path}"])
        mgaug = config.model.mgaug
        assert mgaug.strategy == "none" or mgaug.num_subnets == 3
        # Everything but the MGAug strategy and K, and the run folder.
        settings[path.stem] = dataclasses.replace(
            config, model=dataclasses.replace(config.model, mgaug=dataclasses.replace(
                mgaug, strategy="none", num_subnets=3)),
            runtime=dataclasses.replace(config.runtime, model_dir=None))
    assert len(settings) == 4
    assert all(value == settings["omniglot_protonet_compare"] for value in settings.values())


@pytest.mark.parametrize("path", [path for path in CONFIGS if "mgaug" in path.stem
                                  or "compare_" in path.stem], ids=lambda path: path.name)
def test_published_mgaug_result_configs_keep_the_values_that_made_their_numbers(path,
                                                                                monkeypatch):
    """docs/results.md's MGAug rows ran keep (0.8, 1.0) without resolutions; they must not move."""
    monkeypatch.chdir(REPO)
    mgaug = run_flags.parse_config([f"--flagfile={path}"]).model.mgaug
    assert (mgaug.keep_min, mgaug.keep_max, mgaug.reduction) == (0.8, 1.0, "sum")
    assert mgaug.resolutions == () and not mgaug.parity
    assert mgaug.num_subnets == (1 if path.stem.startswith("mini_subset_") else 3)
