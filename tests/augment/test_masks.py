"""Masks, keep ratios and strategies: exact counts and exact entries."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.augment import strategies


def tiny_network(include_dense=False):
    keras.utils.set_random_seed(0)
    network = mg.FewShotClassifier(mg.Conv4(filters=5), 3)
    network.build((None, 16, 16, 1))
    return network, masks_lib.prunable_weights(network, include_dense)


def test_prunable_weights_are_conv_kernels_by_default():
    network, prunable = tiny_network()
    names = ["/".join(v.path.split("/")[-2:])
             for v, p in zip(network.trainable_variables, prunable) if p]
    assert names == [f"conv{i}/kernel" for i in range(4)]
    _, with_dense = tiny_network(include_dense=True)
    assert sum(with_dense) == 5 and with_dense[-2]  # head kernel, not its bias


@pytest.mark.parametrize("keep_ratio", [1.0, 0.9, 0.8, 0.5, 0.13])
@pytest.mark.parametrize("name", ["random_param", "catfish", "snip", "random_width"])
def test_exact_pruned_counts_per_layer(name, keep_ratio):
    network, prunable = tiny_network()
    weights = [tf.convert_to_tensor(v) for v in network.trainable_variables]
    scores = [tf.random.stateless_uniform(tf.shape(w), seed=[i, 9]) for i, w in enumerate(weights)]
    masks = strategies.get_strategy(name)(weights, prunable, tf.constant(keep_ratio, tf.float64),
                                          seed=tf.constant([1, 2], tf.int64), scores=scores)
    for weight, mask, is_prunable in zip(weights, masks, prunable):
        if not is_prunable:
            assert mask is None
            continue
        full = np.broadcast_to(np.asarray(mask), weight.shape)
        assert set(np.unique(full)) <= {0.0, 1.0}
        if name == "random_width":
            channels = weight.shape[-1]
            kept = int(np.round(keep_ratio * channels))
            expected = np.zeros(channels)
            expected[:kept] = 1
            np.testing.assert_array_equal(full.reshape(-1, channels).min(axis=0), expected)
            np.testing.assert_array_equal(full.reshape(-1, channels).max(axis=0), expected)
        else:
            size = int(np.prod(weight.shape))
            assert (full == 0).sum() == size - int(np.round(keep_ratio * size))


def test_catfish_prunes_highest_mmca_and_snip_the_lowest_by_hand():
    weight = tf.constant([[0.5, -2.0, 1.0], [3.0, 0.1, -0.2]])
    gradient = tf.constant([[1.0, 0.5, -4.0], [0.1, 9.0, 2.0]])
    # |w * g| = [[0.5, 1.0, 4.0], [0.3, 0.9, 0.4]]
    scores = strategies.mmca_scores([weight], [gradient])
    np.testing.assert_allclose(scores[0], [[0.5, 1.0, 4.0], [0.3, 0.9, 0.4]], rtol=1e-6)
    keep = tf.constant(0.5)  # prune 6 - round(3.0) = 3 entries
    catfish_mask = strategies.catfish([weight], [True], keep, scores=scores)[0]
    np.testing.assert_array_equal(catfish_mask, [[1, 0, 0], [1, 0, 1]])  # 4.0, 1.0, 0.9 pruned
    snip_mask = strategies.snip([weight], [True], keep, scores=scores)[0]
    np.testing.assert_array_equal(snip_mask, [[0, 1, 1], [0, 1, 0]])  # 0.3, 0.4, 0.5 pruned


def test_parity_flag_prunes_k_minus_one():
    scores = [tf.reshape(tf.range(100, dtype=tf.float32), [10, 10])]
    weights = [tf.ones([10, 10])]
    # The reference code: k = int(n * (1 - r)) in Python floats, then k - 1 pruned.
    for keep, clean, quirk in ((0.8, 20, 18), (0.97, 3, 2), (0.999, 0, 0), (0.55, 45, 43),
                               (0.5, 50, 49)):
        assert quirk == max(int(100 * (1 - keep)) - 1, 0)
        ratio = tf.constant(keep, tf.float64)
        clean_mask = strategies.catfish(weights, [True], ratio, scores=scores)[0]
        quirk_mask = strategies.catfish(weights, [True], ratio, scores=scores, parity=True)[0]
        assert int(tf.reduce_sum(1 - clean_mask)) == clean
        assert int(tf.reduce_sum(1 - quirk_mask)) == quirk
        # The quirk still prunes from the top: entries 99, 98, ...
        if quirk:
            assert float(tf.reshape(quirk_mask, [-1])[99]) == 0.0


def test_reference_keep_ratios_rule():
    sampler = masks_lib.ReferenceKeepRatios(0.8, 1.0)
    for step in range(5):
        ratios = sampler(4, seed=tf.constant([3, step], tf.int64)).numpy()
        assert ratios.shape == (4,)
        assert np.all(np.diff(ratios) <= 0)  # sorted descending
        assert ratios[-1] == pytest.approx(0.8)  # the smallest sub-network is always there
        assert np.all((ratios >= 0.8) & (ratios <= 1.0))
    capped = masks_lib.ReferenceKeepRatios(0.98, 1.0, cap=0.999)(8, seed=[0, 0]).numpy()
    assert capped.max() <= 0.999
    np.testing.assert_array_equal(masks_lib.ConstantKeepRatio(0.7)(3, seed=[0, 0]), [0.7] * 3)


def test_strip_bakes_masks_into_a_copy_only():
    network, prunable = tiny_network()
    weights = network.trainable_variables
    before = [v.numpy().copy() for v in weights]
    masks = strategies.random_width([tf.convert_to_tensor(w) for w in weights], prunable,
                                    tf.constant(0.6))
    stripped = masks_lib.strip(weights, masks)
    for value, original, mask in zip(stripped, before, masks):
        expected = original if mask is None else original * np.asarray(mask)
        np.testing.assert_array_equal(value, expected)
    for variable, original in zip(weights, before):
        np.testing.assert_array_equal(variable.numpy(), original)
    sparsity = float(masks_lib.sparsity(masks, weights))
    assert sparsity == pytest.approx(1 - 3 / 5)  # round(0.6 * 5) = 3 channels kept


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1, "0.5"])
def test_bad_keep_ratios_raise(bad):
    with pytest.raises(ValueError, match="keep ratio in \\(0, 1\\]"):
        masks_lib.ReferenceKeepRatios(bad, 1.0)
    with pytest.raises(ValueError, match="keep ratio"):
        mg.MGAug(keep_range=(0.5, bad))
