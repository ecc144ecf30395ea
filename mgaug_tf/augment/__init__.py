"""MGAug: pruning masks, strategies and the meta-gradient augmentation."""

from mgaug_tf.augment.masks import (ConstantKeepRatio, KeepRatioSampler, ReferenceKeepRatios,
                                    prunable_weights, sparsity, strip)
from mgaug_tf.augment.mgaug import MGAug, MGAugSettings, SubNetworks
from mgaug_tf.augment.strategies import (STRATEGIES, catfish, get_strategy, mmca_scores,
                                         pruned_count, random_param, random_width, snip)

__all__ = ["ConstantKeepRatio", "KeepRatioSampler", "MGAug", "MGAugSettings", "SubNetworks",
           "ReferenceKeepRatios", "STRATEGIES",
           "catfish", "get_strategy", "mmca_scores", "prunable_weights", "pruned_count",
           "random_param", "random_width", "snip", "sparsity", "strip"]
