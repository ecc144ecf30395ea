"""`mgaug-train --dataset=folder`: a generated folder trains and evaluates; mistakes stop it."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.trainers.conftest import call_train

RUN = ["--dataset=folder", "--image_size=28", "--channels=1", "--backbone=conv4", "--filters=4",
       "--learner=maml", "--inner_steps=1", "--n_way=3", "--k_shot=1", "--k_query=2",
       "--meta_batch_size=1", "--train_steps=2", "--eval_every=2", "--val_episodes=2",
       "--eval_episodes=3", "--checkpoint_every=2", "--mode=train_and_eval"]
CONVERSION = ("Data: folder images are read with Pillow whatever their size and mode, converted "
              "to grey (L) and resized to 28x28 (pil_bilinear, aspect ratio not kept).")


def _write_folder(root, counts=(4, 4, 4)):
    """{train,val,test}/<class>/ of RGB images in several sizes and encodings."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for label, count in enumerate(counts):
            folder = root / split / f"{split}_class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                size = (30 + 5 * index, 40)
                image = Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8))
                image.save(folder / f"{index}.{'png' if index % 2 else 'jpg'}")
    return root


def test_a_folder_of_any_size_rgb_images_trains_and_evaluates_in_grey(tmp_path):
    data_dir = _write_folder(tmp_path / "images")
    model_dir = tmp_path / "run"
    code, out, err = call_train([f"--data_dir={data_dir}", f"--model_dir={model_dir}", *RUN])
    assert code == 0, err
    assert out.count(CONVERSION) == 1
    result = json.loads((model_dir / "eval_test.json").read_text())
    assert result["dataset"] == "folder" and result["num_episodes"] == 3
    assert 0 <= result["mean_accuracy"] <= 1
    assert (model_dir / "checkpoint").is_file()


def test_mistakes_in_the_folder_stop_the_cli_before_any_work(tmp_path):
    data_dir = _write_folder(tmp_path / "images")
    short = data_dir / "train" / "train_class1"
    (short / "2.jpg").unlink()
    (short / "3.png").unlink()
    model_dir = tmp_path / "run"
    code, _, err = call_train([f"--data_dir={data_dir}", f"--model_dir={model_dir}", *RUN])
    assert code == 2
    assert ("--k_shot + --k_query = 1 + 2 = 3 examples per class, but 1 class of folder train "
            "(--train_split) has fewer: 'train_class1' (2). Add examples to it, remove it from "
            "the split, or lower --k_shot or --k_query.") in err
    assert "Traceback" not in err and not (model_dir / "checkpoint").exists()

    (short / "2.png").write_text("not an image")
    (short / "3.png").write_bytes(b"")
    code, _, err = call_train([f"--data_dir={data_dir}", f"--model_dir={model_dir}", *RUN])
    assert code == 2
    assert "2 image(s) of the chosen splits cannot be read" in err
    assert f"{short / '2.png'}: not a JPEG, PNG, GIF, BMP or WebP file" in err
    assert f"{short / '3.png'}: empty (0 bytes)" in err


@pytest.mark.parametrize("flag, message", [
    ("--split_file=splits.json", "--split_file=splits.json: --dataset=miniimagenet does not "
                                 "take it (it takes --image_size); leave it unset."),
    ("--channels=2", "--channels=2: folder: `channels` must be 1 (grey) or 3 (RGB). Received: "
                     "channels=2."),
])
def test_folder_flags_refused_by_name(tmp_path, flag, message):
    data_dir = _write_folder(tmp_path / "images")
    dataset = "--dataset=miniimagenet" if "split_file" in flag else "--dataset=folder"
    run = [argument for argument in RUN if not argument.startswith("--channels")]
    code, _, err = call_train([f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}", *run,
                          dataset, flag])
    assert code == 2 and message in err, err
