"""configs/tiered.cfg runs on tieredImageNet files in each format the data package reads."""

import json

import numpy as np
import pytest

from mgaug_tf import presets
from mgaug_tf_cli import flags as run_flags
from tests.data.writers import random_images, write_npz_tiered, write_ren_tiered
from tests.trainers.conftest import REPO, RUN, Cli

CLASSES, IMAGES_PER_CLASS, SIZE = 5, 4, 24


def write_tiered(root, file_format):
    """Three splits of 5 classes x 4 images in the Ren et al. or MetaOptNet/FEAT format."""
    root.mkdir(parents=True)
    for index, split in enumerate(("train", "val", "test")):
        images = random_images(CLASSES * IMAGES_PER_CLASS, SIZE, seed=index)
        labels = np.repeat(np.arange(CLASSES), IMAGES_PER_CLASS)
        if file_format == "ren":
            write_ren_tiered(root, split, images, labels, labels % 2,
                             [f"n{index}{label:07d}" for label in range(CLASSES)],
                             ["n09999991", "n09999992"])
        else:  # classes numbered across splits, as in the release
            write_npz_tiered(root, split, images, labels + CLASSES * index)
    return root


# Only what makes a few CPU steps affordable; learner, MGAug, optimizer and
# episode layout come from the config.
SMALL = ["--image_size=16", "--filters=4", "--k_query=2", "--meta_batch_size=2",
         "--inner_steps=1", "--eval_inner_steps=1", "--num_subnets=1", "--resolutions=16",
         "--train_steps=2",
         "--eval_every=2", "--checkpoint_every=2", "--val_episodes=2", "--eval_episodes=2"]


def _run_tiered(tmp_path, extra, file_formats=("ren", "npz")):
    runs = {}
    try:
        for file_format in file_formats:
            data_dir = write_tiered(tmp_path / file_format, file_format)
            runs[file_format] = Cli(RUN, ["--flagfile=configs/tiered.cfg",
                                          f"--data_dir={data_dir}",
                                          f"--model_dir={tmp_path / (file_format + '_run')}",
                                          *extra], tmp_path, file_format)
        for cli in runs.values():
            cli.check()
    finally:
        for cli in runs.values():
            cli.kill()
    for file_format in file_formats:
        model_dir = tmp_path / (file_format + "_run")
        result = json.loads((model_dir / "eval_test.json").read_text())
        assert result["dataset"] == "tieredimagenet"
        assert result["config"]["learner"] == "maml" and result["config"]["mgaug"] == "catfish"
        assert result["config"]["n_way"] == 5 and result["config"]["k_shot"] == 1
        assert (model_dir / "export" / "saved_model.pb").exists()


def test_tiered_config_runs_on_both_file_formats(tmp_path):
    _run_tiered(tmp_path, SMALL)


@pytest.mark.slow
def test_tiered_config_runs_at_full_model_size(tmp_path):
    """The config's own network, image size, inner steps and K; one meta-step."""
    _run_tiered(tmp_path, ["--k_query=2", "--train_steps=1", "--eval_every=1",
                           "--val_episodes=1", "--eval_episodes=1"], file_formats=("npz",))


@pytest.mark.slow
def test_demo_config_trains_evaluates_and_exports_well_above_chance(tmp_path):
    model_dir = tmp_path / "demo"
    Cli(RUN, ["--flagfile=configs/demo.cfg", f"--model_dir={model_dir}"], tmp_path,
        "demo").check(timeout=1200)
    result = json.loads((model_dir / "eval_test.json").read_text())
    assert result["num_episodes"] == 600
    assert result["mean_accuracy"] - result["ci95"] > 0.6  # 5-way: chance is 0.2
    assert (model_dir / "export" / "saved_model.pb").exists()


# ----------------------------------------------------- MGAug's released setting
# The sinusoid configs are not a released MGAug experiment (tests/trainers/test_regression_cli.py).
MGAUG_CONFIGS = sorted(path for path in (REPO / "configs").glob("*_mgaug.cfg")
                       if not path.name.startswith("sinusoid_"))
MGAUG_CONFIGS.append(REPO / "configs" / "tiered.cfg")


def test_every_mgaug_config_is_checked():
    # 4 datasets x 3 learners, ResNet-10 on 2 datasets x 3 learners, and tiered.cfg
    assert len(MGAUG_CONFIGS) == 19


@pytest.mark.parametrize("path", MGAUG_CONFIGS, ids=lambda path: path.name)
def test_mgaug_config_is_the_released_preset(path, monkeypatch):
    """Each *_mgaug.cfg's MGAug section is `presets.released_mgaug` for its learner and size.

    Parity only where the config is the released experiment itself (CUB).
    """
    monkeypatch.chdir(REPO)  # included --flagfile paths are relative to the repository
    config = run_flags.parse_config([f"--flagfile={path}"])
    learner, size = config.model.learner.name, config.data.image_size
    assert config.model.mgaug == presets.get("released_mgaug", learner_name=learner,
                                             image_size=size,
                                             parity=config.data.dataset == "cub",
                                             backbone=config.model.backbone.name)
    assert config.episodes.meta_batch_size == (1 if learner == "protonet" else
                                               32 if config.data.dataset == "omniglot" else 4)


def test_released_preset_values():
    """The released runs' values (docs/method.md): sizes 1.0 / 0.76 / 0.57 of 84 px, rounded."""
    maml = presets.released_mgaug("maml", 84)
    assert (maml.strategy, maml.num_subnets, maml.reduction) == ("catfish", 3, "sum")
    assert (maml.keep_min, maml.keep_max, maml.resolutions) == (0.98, 1.0, (84, 64, 48))
    assert (maml.resize, maml.flatten_head, maml.parity) == ("align_corners", "reference", False)
    assert presets.released_mgaug("protonet", 28).keep_min == 0.97
    assert presets.released_mgaug("protonet", 28).resolutions == (28, 21, 16)
    assert presets.released_mgaug("fomaml", 32).resolutions == (32, 24, 18)
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        presets.get("nope")
