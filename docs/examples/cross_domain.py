"""Cross-domain testing: meta-train on one dataset, test on another.

A model meta-trained on the built-in glyphs (grey strokes, 28 px, no files
needed) is tested on a folder of RGB images it has never seen the like of:
coloured shapes, one shape and colour per class, of several sizes, generated
here in a temporary folder. `mgaug-train --test_dataset=folder
--test_data_dir=...` reads the folder's test classes at the training image
size and converts them to the training channels (RGB -> grey by Pillow's
luma rule), says so in its log, and writes the result beside the in-domain
one, to `eval_test_folder.json`. The commands are the program's, as you
would type them (`mgaug-train` is `python -m mgaug_tf_cli.train`).

    python docs/examples/cross_domain.py
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TRAIN = ["--dataset=glyphs", "--image_size=28", "--learner=maml", "--filters=8", "--n_way=3",
         "--k_shot=1", "--k_query=2", "--meta_batch_size=2", "--inner_lr=0.1",
         "--inner_steps=1", "--eval_inner_steps=2", "--train_steps=4", "--eval_every=4",
         "--val_episodes=4", "--eval_episodes=10", "--checkpoint_every=4"]


def write_rgb_folder(root, num_classes=4, images_per_class=5, seed=0):
    """`root/test/<class>/<n>.png`: RGB shapes of 40 to 79 px, one shape and colour a class."""
    rng = np.random.default_rng(seed)
    for label in range(num_classes):
        folder = root / "test" / f"shape{label}"
        folder.mkdir(parents=True)
        colour = tuple(int(c) for c in rng.integers(40, 256, 3))
        sides = 3 + label
        for index in range(images_per_class):
            width, height = (int(s) for s in rng.integers(40, 80, 2))
            image = Image.new("RGB", (width, height), (0, 0, 0))
            radius = min(width, height) * rng.uniform(0.3, 0.45)
            turn = rng.uniform(0, 2 * np.pi)
            ImageDraw.Draw(image).polygon(
                [(width / 2 + radius * np.cos(turn + 2 * np.pi * k / sides),
                  height / 2 + radius * np.sin(turn + 2 * np.pi * k / sides))
                 for k in range(sides)], fill=colour)
            image.save(folder / f"{index}.png")


def mgaug_train(*flags):
    """Runs `mgaug-train` with `flags`; returns its standard output."""
    done = subprocess.run([sys.executable, "-m", "mgaug_tf_cli.train", *flags], check=True,
                          capture_output=True, text=True)
    return done.stdout


def main():
    with tempfile.TemporaryDirectory() as folder:
        shapes, model_dir = Path(folder) / "shapes", Path(folder) / "glyph_run"
        write_rgb_folder(shapes)
        # 1. Meta-train on the glyphs, validate on them, evaluate in-domain (eval_test.json).
        mgaug_train(*TRAIN, f"--model_dir={model_dir}")
        # 2. The same best checkpoint, tested on the RGB folder converted to 28 px grey.
        out = mgaug_train("--mode=eval", f"--model_dir={model_dir}", "--test_dataset=folder",
                          f"--test_data_dir={shapes}")
        print(out, end="")
        results = {name: json.loads((model_dir / name).read_text())
                   for name in ("eval_test.json", "eval_test_folder.json")}
    for name, result in results.items():
        print(f"{name}: {result['dataset']} {100 * result['mean_accuracy']:.2f} % "
              f"+- {100 * result['ci95']:.2f} % over {result['num_episodes']} episodes")
    print("conversion:", json.dumps(results["eval_test_folder.json"]["cross_domain"]))
    return results


if __name__ == "__main__":
    main()
