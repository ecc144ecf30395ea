"""Pruning strategies: how a sub-network's masks are chosen.

Every strategy has one interface,
`strategy(weights, prunable, keep_ratio, seed, scores, parity, ranks) -> masks`,
with masks aligned to `weights` (`None` where a weight is not prunable), and
the same counting rule: a layer of n entries keeps round(keep_ratio * n)
(round half to even) and prunes the rest. `keep_ratio` and `seed` are
tensors, so one trace serves every draw. Scored strategies (`SCORE_RANKS`)
prune by the rank of each entry's score, which `ranks=` can supply when
several draws share the scores (a task's sub-networks).
"""

import tensorflow as tf

from mgaug_tf.errors import ArgumentError


def pruned_count(size, keep_ratio, parity=False):
    """Entries to prune in a layer of `size` entries (a tensor).

    Clean rule: size - round(keep_ratio * size). With `parity`, the reference
    code's rule: int(size * (1 - keep_ratio)) - 1, floored at zero.
    """
    # Float64 like the reference code's Python arithmetic: int(100 * (1 - 0.97))
    # is 3 in float64 but 2 in float32.
    keep_ratio = tf.cast(keep_ratio, tf.float64)
    size_float = tf.cast(size, tf.float64)
    if parity:
        count = tf.cast(tf.floor(size_float * (1.0 - keep_ratio)), tf.int32) - 1
        return tf.maximum(count, 0)
    return size - tf.cast(tf.round(keep_ratio * size_float), tf.int32)


def descending_ranks(scores):
    """Each entry's rank by descending score (0: the highest; ties in flat order), int32.

    One sort: the inverse of the stable descending order.
    """
    flat = tf.reshape(scores, [-1])
    order = tf.argsort(flat, direction="DESCENDING", stable=True)
    return tf.reshape(tf.math.invert_permutation(order), tf.shape(scores))


def prune_ranked(ranks, count, dtype):
    """Mask (of `ranks`' shape, in `dtype`) that zeros the entries ranked below `count`."""
    return tf.cast(ranks >= count, dtype)


def prune_highest(scores, count):
    """Mask (of `scores`' shape) that zeros exactly the `count` highest scores."""
    return prune_ranked(descending_ranks(scores), count, scores.dtype)


def _element_masks(weights, prunable, keep_ratio, rank_fn, parity=False):
    masks = []
    for index, (weight, is_prunable) in enumerate(zip(weights, prunable)):
        if not is_prunable:
            masks.append(None)
            continue
        size = int(weight.shape.num_elements())
        count = pruned_count(size, keep_ratio, parity)
        masks.append(prune_ranked(rank_fn(index, weight), count, weight.dtype))
    return masks


def random_width(weights, prunable, keep_ratio, seed=None, scores=None, parity=False,
                 ranks=None):
    """Keeps the first round(r * C) output channels of each prunable layer.

    A channel mask (shape `[1, ..., 1, C]`, broadcast over the kernel), i.e. a
    width-slimmed sub-network as in GradAug. Biases and batch norm are not
    masked (as in the reference code), so a removed channel carries no input
    signal, only its bias.
    """
    del seed, scores, parity, ranks
    masks = []
    for weight, is_prunable in zip(weights, prunable):
        if not is_prunable:
            masks.append(None)
            continue
        channels = int(weight.shape[-1])
        kept = tf.cast(tf.round(tf.cast(keep_ratio, tf.float64) * channels), tf.int32)
        channel_mask = tf.cast(tf.range(channels) < kept, weight.dtype)
        masks.append(tf.reshape(channel_mask, [1] * (len(weight.shape) - 1) + [channels]))
    return masks


def random_param(weights, prunable, keep_ratio, seed, scores=None, parity=False, ranks=None):
    """Drops exactly n - round(r * n) entries per layer, uniformly at random."""
    del scores, parity, ranks

    def random_ranks(index, weight):
        layer_seed = tf.random.experimental.stateless_fold_in(seed, index)
        return descending_ranks(tf.random.stateless_uniform(tf.shape(weight), seed=layer_seed,
                                                            dtype=weight.dtype))

    return _element_masks(weights, prunable, keep_ratio, random_ranks)


def catfish_ranks(scores, prunable):
    """Catfish's order of pruning: `descending_ranks` of each prunable weight's scores.

    A task's K sub-networks share the scores, so the learner ranks them once
    and passes `ranks=` to `catfish`; `None` where a weight is not prunable.
    """
    return [descending_ranks(score) if is_prunable else None
            for score, is_prunable in zip(scores, prunable)]


def snip_ranks(scores, prunable):
    """SNIP's order of pruning, lowest score first (`catfish_ranks` of the negated scores)."""
    return catfish_ranks([-score for score in scores], prunable)


def catfish(weights, prunable, keep_ratio, seed=None, scores=None, parity=False, ranks=None):
    """Prunes the entries carrying the most memorization (MMCA, the paper's catfish).

    `scores[i]` is |theta * dL_meta/dtheta| for weight i; the highest
    n - round(r * n) entries of each layer are pruned. `ranks`, if given,
    is `catfish_ranks(scores, prunable)` computed once for several draws.
    """
    del seed
    ranks = catfish_ranks(scores, prunable) if ranks is None else ranks
    return _element_masks(weights, prunable, keep_ratio, lambda index, _: ranks[index], parity)


def snip(weights, prunable, keep_ratio, seed=None, scores=None, parity=False, ranks=None):
    """The opposite criterion (SNIP): prunes the lowest-scoring entries (an ablation).

    `ranks`, if given, is `snip_ranks(scores, prunable)`.
    """
    del seed
    ranks = snip_ranks(scores, prunable) if ranks is None else ranks
    return _element_masks(weights, prunable, keep_ratio, lambda index, _: ranks[index], parity)


# How each scored strategy orders a weight's entries for pruning.
SCORE_RANKS = {"catfish": catfish_ranks, "snip": snip_ranks}
STRATEGIES = {"random_width": random_width, "random_param": random_param,
              "catfish": catfish, "snip": snip}
SCORED = tuple(SCORE_RANKS)


def get_strategy(name, owner=None):
    """The strategy function for `name` (one of `STRATEGIES`).

    Raises:
        mgaug_tf.errors.ArgumentError: (argument `strategy`) An unknown name;
            `owner` names the refusing class in the message.
    """
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ArgumentError("strategy", name,
                            f"must name a pruning strategy, one of {sorted(STRATEGIES)}",
                            owner=owner)
    return STRATEGIES[name]


def mmca_scores(weights, gradients):
    """Meta-Memorization Carrying Amount |theta * dL_meta/dtheta| per entry."""
    return [tf.abs(weight * tf.cast(gradient, weight.dtype))
            for weight, gradient in zip(weights, gradients)]
