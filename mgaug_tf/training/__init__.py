"""Trainer pieces: episode inputs, the meta-training loop, checkpoints, summaries, evaluation.

`mgaug-train` (`mgaug_tf_cli/train.py`) assembles them from the config; nothing here reads flags.
"""

from mgaug_tf.training.checkpoints import CheckpointError, RunCheckpoints, restore_learner
from mgaug_tf.training.evaluation import (EpisodeEvaluator, EvaluationResult,
                                          confidence_interval_95)
from mgaug_tf.training.inputs import EpisodeSpec, distributed_meta_batches, meta_batches
from mgaug_tf.training.summaries import RunSummaries
from mgaug_tf.training.trainer import MetaTrainer, NonFiniteError, make_distributed_train_step

__all__ = ["CheckpointError", "EpisodeEvaluator", "EpisodeSpec", "EvaluationResult",
           "MetaTrainer", "NonFiniteError", "RunCheckpoints", "RunSummaries",
           "confidence_interval_95", "distributed_meta_batches", "make_distributed_train_step",
           "meta_batches", "restore_learner"]
