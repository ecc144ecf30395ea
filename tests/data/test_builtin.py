"""The built-in `glyphs` dataset: deterministic, disjoint splits, learnable."""

import numpy as np

from mgaug_tf.data import load
from mgaug_tf.data.builtin import generate_class


def test_same_seed_same_pixels_other_seed_other_pixels():
    first = load("glyphs", split="train", num_classes=(5, 2, 2)).images(3)
    again = load("glyphs", split="train", num_classes=(5, 2, 2)).images(3)
    other = load("glyphs", split="train", num_classes=(5, 2, 2), seed=1).images(3)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 5


def test_splits_hold_different_classes():
    splits = {split: load("glyphs", split=split, num_classes=(4, 3, 2))
              for split in ("train", "val", "test")}
    names = [set(split.class_names) for split in splits.values()]
    assert [len(n) for n in names] == [4, 3, 2]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    # A val class is the glyph that follows the train classes, not a train glyph.
    np.testing.assert_array_equal(splits["val"].images(0), generate_class(0, 4, 20, 28))


def test_shape_and_ink():
    split = load("glyphs", split="val")
    assert (split.num_classes, split.image_shape) == (200, (28, 28, 1))
    images = split.images(0)
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    ink = (images > 127).mean()
    assert 0.04 < ink < 0.4  # strokes on a black background


def test_classes_are_learnable_but_not_trivial():
    # Nearest class mean on raw pixels, 5-way 1-shot: well above chance (0.2),
    # yet far from solved, so meta-learning has something to learn.
    data = np.stack([generate_class(0, 1200 + c, 20, 28) for c in range(40)])
    data = data.reshape(40, 20, -1).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    correct = []
    for _ in range(100):
        classes = rng.choice(40, 5, replace=False)
        picks = np.stack([rng.permutation(20)[:6] for _ in classes])
        support = data[classes, picks[:, 0]]
        query = data[classes[:, None], picks[:, 1:]].reshape(25, -1)
        distances = ((query[:, None] - support[None]) ** 2).sum(-1)
        correct.append(distances.argmin(1) == np.repeat(np.arange(5), 5))
    accuracy = np.mean(correct)
    assert 0.4 < accuracy < 0.85, accuracy
