"""configs/tiered.cfg runs on tieredImageNet files in each format the data package reads."""

import json

import numpy as np
import pytest

from tests.data.writers import random_images, write_npz_tiered, write_ren_tiered
from tests.trainers.conftest import RUN, Cli

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
         "--inner_steps=1", "--eval_inner_steps=1", "--num_subnets=1", "--train_steps=2",
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
