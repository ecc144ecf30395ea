"""`trainers/run.py --dataset=tfds:mini_imagenet`: trains and evaluates on TFDS-prepared data."""

import json

import numpy as np
import tensorflow_datasets as tfds

from mgaug_tf.data.tfds_builders import MiniImagenet
from mgaug_tf_cli import flags as run_flags
from tests.data.writers import random_images, write_ravi_mini


def test_run_trains_and_evaluates_from_a_tfds_data_dir(tmp_path):
    images = random_images(3 * 3 * 4, 84, seed=7)
    for offset, split in enumerate(("train", "val", "test")):
        write_ravi_mini(tmp_path / "mini", split, {
            f"n{offset}{c:07d}": images[(offset * 3 + c) * 4:(offset * 3 + c + 1) * 4]
            for c in range(3)})
    MiniImagenet(data_dir=str(tmp_path / "tfds")).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "mini")))
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel
    model_dir = tmp_path / "model"
    train.run(run_flags.parse_config([f"--model_dir={model_dir}", "--dataset=tfds:mini_imagenet",
                 f"--data_dir={tmp_path / 'tfds'}", "--image_size=16", "--filters=4",
                 "--learner=protonet", "--n_way=3", "--k_shot=1", "--k_query=2",
                 "--meta_batch_size=2", "--train_steps=2", "--eval_every=2",
                 "--checkpoint_every=2", "--val_episodes=2", "--eval_episodes=2",
                 "--mode=train_and_eval"]))
    result = json.loads((model_dir / "eval_test.json").read_text())
    assert result["dataset"] == "miniimagenet" and result["split"] == "test"
    assert result["config"]["dataset"] == "tfds:mini_imagenet"
    assert result["num_episodes"] == 2 and np.isfinite(result["mean_accuracy"])
    assert (model_dir / "best").is_dir()
