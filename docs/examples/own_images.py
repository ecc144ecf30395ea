"""Meta-learn on your own images: a folder of class folders and a split file.

Your images go in one folder per class, of any size and mode (RGB, grey,
palette, RGBA; PNG, JPEG, GIF, BMP, WebP); a split file names the classes
meta-trained on (train), validated on (val) and tested on (test). The reader
converts every image to `channels` and resizes it to `image_size` as it is
drawn into an episode. Here a tiny dataset is generated in a temporary
folder (coloured shapes, one shape and colour per class, 7 images each), then
MAML with a small Conv4 trains a few meta-steps and is evaluated on new
classes.

    python docs/examples/own_images.py
"""

import json
import tempfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageDraw

import mgaug_tf as mg


def write_dataset(root, num_classes=12, images_per_class=7, seed=0):
    """`root/<class>/<n>.png` (sizes vary per image) and `root/splits.json`."""
    rng = np.random.default_rng(seed)
    names = []
    for label in range(num_classes):
        name = f"shape{label:02d}"
        names.append(name)
        (root / name).mkdir(parents=True)
        colour = tuple(int(c) for c in rng.integers(40, 256, 3))
        sides = 3 + label % 4
        for index in range(images_per_class):
            width, height = (int(s) for s in rng.integers(40, 80, 2))
            image = Image.new("RGB", (width, height), (0, 0, 0))
            centre, radius = (width / 2, height / 2), min(width, height) * rng.uniform(0.3, 0.45)
            turn = rng.uniform(0, 2 * np.pi)
            points = [(centre[0] + radius * np.cos(turn + 2 * np.pi * k / sides),
                       centre[1] + radius * np.sin(turn + 2 * np.pi * k / sides))
                      for k in range(sides)]
            ImageDraw.Draw(image).polygon(points, fill=colour)
            image.save(root / name / f"{index}.png")
    split_file = root / "splits.json"
    split_file.write_text(json.dumps({"train": names[:6], "val": names[6:9],
                                      "test": names[9:]}))
    return split_file


def main():
    mg.configure_tensorflow()
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "my_images"
        split_file = write_dataset(root)
        options = dict(split_file=split_file, image_size=28, channels=3)
        train = mg.data.load("folder", root, "train", **options)
        test = mg.data.load("folder", root, "test", **options)
        print(train)
        print(train.conversion)

        n_way, k_shot, k_query = 3, 1, 2
        batches = mg.data.episode_dataset(train, n_way, k_shot, k_query, meta_batch_size=2,
                                          augment=False)
        network = mg.FewShotClassifier(mg.Conv4(filters=8), n_way=n_way)
        learner = mg.MAML(network, n_way=n_way, inner_lr=0.1, inner_steps=1)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        learner.fit(batches, steps_per_epoch=4, epochs=1, verbose=0)

        # Fixed evaluation episodes (seed 0): adapt to each support set, predict its queries.
        test_episodes = mg.data.episode_dataset(test, n_way, k_shot, k_query,
                                                meta_batch_size=1, training=False,
                                                num_episodes=10, augment=False)
        accuracies = []
        for (support, support_labels, query), query_labels in test_episodes:
            logits = learner.adapt_and_predict(support[0], support_labels[0], query[0])
            accuracies.append(float(np.mean(np.argmax(logits, axis=-1) == query_labels[0])))
        print(f"test accuracy over {len(accuracies)} episodes of new classes: "
              f"{np.mean(accuracies):.3f}")
        return accuracies


if __name__ == "__main__":
    main()
