"""The result-reproduction configs (`configs/results/*.cfg`) parse and point at the shared data."""

import pytest
from absl import flags

from tests.results.conftest import REPO
from trainers import flags as run_flags
from trainers import run  # noqa: F401  (defines the CLI's flags)

FLAGS = flags.FLAGS
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
    FLAGS(["run.py", f"--flagfile={path}"])
    dataset, data_dir, size, learner, strategy = expected_settings(path.stem)
    try:
        assert FLAGS.data_dir == data_dir
        assert FLAGS.model_dir.startswith("/tmp/runs/")  # outputs stay out of the repository
        assert (FLAGS.dataset, FLAGS.n_way, FLAGS.k_shot, FLAGS.image_size) == (dataset, 5, 1,
                                                                                size)
        assert FLAGS.eval_episodes == 600 and FLAGS.mgaug == strategy
        assert FLAGS.learner == learner
    finally:
        FLAGS.unparse_flags()


def test_comparison_arms_differ_only_in_mgaug(monkeypatch):
    monkeypatch.chdir(REPO)
    settings = {}
    for path in sorted((REPO / "configs" / "results").glob("omniglot_protonet_compare*.cfg")):
        FLAGS(["run.py", f"--flagfile={path}"])
        try:
            settings[path.stem] = {name: FLAGS[name].value for name in run_flags.MODEL_FLAGS
                                   + ("train_steps", "outer_lr", "eval_seed")
                                   if name not in ("mgaug", "num_subnets")}
            assert FLAGS.mgaug == "none" or FLAGS.num_subnets == 3
        finally:
            FLAGS.unparse_flags()
    assert len(settings) == 4
    assert all(value == settings["omniglot_protonet_compare"] for value in settings.values())


@pytest.mark.parametrize("path", [path for path in CONFIGS if "mgaug" in path.stem
                                  or "compare_" in path.stem], ids=lambda path: path.name)
def test_published_mgaug_result_configs_keep_the_values_that_made_their_numbers(path,
                                                                                monkeypatch):
    """docs/results.md's MGAug rows ran keep (0.8, 1.0) without resolutions; they must not move."""
    monkeypatch.chdir(REPO)
    FLAGS(["run.py", f"--flagfile={path}"])
    try:
        assert (FLAGS.keep_min, FLAGS.keep_max, FLAGS.mgaug_reduction) == (0.8, 1.0, "sum")
        assert FLAGS.resolutions == [] and not FLAGS.mgaug_parity
        assert FLAGS.num_subnets == (1 if path.stem.startswith("mini_subset_") else 3)
    finally:
        FLAGS.unparse_flags()
