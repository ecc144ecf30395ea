"""Meta-learn on array data that is not images: sensor sequences in an `.npz` file.

`data.npz` holds `x` `[N, ...]` (here 3-axis sensor sequences `[N, 32, 3]`;
vectors, spectrograms or any shape work the same) and `y` `[N]` labels (here
strings), and a CSV split file names the classes of each split. Episodes
carry the rows of `x` as float32 with their values unchanged; a network for
that shape (here the package's `MLP`, which flattens any example) does the
rest. A tiny dataset is generated in a temporary folder: each class is a
waveform family (its own frequency and phase per axis), each example a noisy,
randomly scaled draw of it. MAML trains a few meta-steps and is evaluated on
new classes.

    python docs/examples/arrays.py
"""

import tempfile
from pathlib import Path

import keras
import numpy as np

import mgaug_tf as mg
from mgaug_tf.backbones.mlp import MLP


def write_dataset(root, num_classes=12, examples_per_class=10, length=32, seed=0):
    """`root/data.npz` (x float32 [N, length, 3], y str [N]) and `root/splits.csv`."""
    rng = np.random.default_rng(seed)
    time = np.linspace(0, 1, length)[:, None]
    names, x, y = [], [], []
    for label in range(num_classes):
        name = f"gesture_{label:02d}"
        names.append(name)
        frequency, phase = rng.uniform(1, 4, 3), rng.uniform(0, 2 * np.pi, 3)
        for _ in range(examples_per_class):
            signal = rng.uniform(0.7, 1.3) * np.sin(2 * np.pi * frequency * time + phase)
            x.append(signal + 0.2 * rng.normal(size=signal.shape))
            y.append(name)
    root.mkdir(parents=True)
    np.savez(root / "data.npz", x=np.asarray(x, np.float32), y=np.asarray(y, str))
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    split_file = root / "splits.csv"
    split_file.write_text("class,split\n" + "".join(
        f"{name},{split}\n" for name, split in zip(names, splits)))
    return split_file


def main():
    mg.configure_tensorflow()
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "my_arrays"
        split_file = write_dataset(root)
        train = mg.data.load("arrays", root, "train", split_file=split_file)
        test = mg.data.load("arrays", root, "test", split_file=split_file)
        print(train)

        n_way, k_shot, k_query = 3, 1, 3
        batches = mg.data.episode_dataset(train, n_way, k_shot, k_query, meta_batch_size=2)
        network = mg.FewShotClassifier(MLP(hidden_units=(32, 32)), n_way=n_way)
        learner = mg.MAML(network, n_way=n_way, inner_lr=0.1, inner_steps=1)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        learner.fit(batches, steps_per_epoch=20, epochs=1, verbose=0)

        # Fixed evaluation episodes (seed 0): adapt to each support set, predict its queries.
        test_episodes = mg.data.episode_dataset(test, n_way, k_shot, k_query,
                                                meta_batch_size=1, training=False,
                                                num_episodes=10)
        accuracies = []
        for (support, support_labels, query), query_labels in test_episodes:
            logits = learner.adapt_and_predict(support[0], support_labels[0], query[0])
            accuracies.append(float(np.mean(np.argmax(logits, axis=-1) == query_labels[0])))
        print(f"test accuracy over {len(accuracies)} episodes of new classes: "
              f"{np.mean(accuracies):.3f}")
        return accuracies


if __name__ == "__main__":
    main()
