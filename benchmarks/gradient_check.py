"""Prints the finite-difference errors of every learner's meta-gradient (float64).

Conv4 (3 filters) with batch norm and max-pool on 16x16 images, 3-way 2-shot,
5 inner steps, 2 tasks: the configuration of tests/learners/test_meta_gradients.py.

Usage (with mgaug-tf installed, `pip install -e .`):
    python benchmarks/gradient_check.py
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mgaug_tf as mg  # noqa: E402
from mgaug_tf.gradient_check import FiniteDifferences  # noqa: E402


def episode_batch(seed=0, tasks=2, n_way=3, shots=2, queries=2, size=16):
    rng = np.random.default_rng(seed)
    support_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), shots))
                               for _ in range(tasks)]).astype("int32")
    query_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), queries))
                             for _ in range(tasks)]).astype("int32")
    return ((rng.normal(size=(tasks, n_way * shots, size, size, 1)), support_labels,
             rng.normal(size=(tasks, n_way * queries, size, size, 1))), query_labels)


def main():
    batch = episode_batch()
    for name, kind in (("maml", mg.MAML), ("fomaml", mg.FOMAML), ("anil", mg.ANIL),
                       ("metasgd", mg.MetaSGD), ("protonet", mg.ProtoNet)):
        keras.utils.set_random_seed(0)
        backbone = mg.Conv4(filters=3, dtype="float64")
        if kind is mg.ProtoNet:
            learner = kind(backbone, 3)
        else:
            learner = kind(mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.1, inner_steps=5)
        learner.build((16, 16, 1))
        _, gradients = tf.function(learner.compute_meta_gradients)(batch)
        checker = FiniteDifferences(learner, batch)
        errors = [checker.directional(gradients, seed)[2] for seed in range(3)]
        record = {"learner": name, "max_relative_error": float(max(errors)),
                  "directions": len(errors), "dtype": "float64",
                  "inner_steps": 0 if kind is mg.ProtoNet else 5}
        if kind is mg.FOMAML:
            record["note"] = ("first-order approximation: differs from the true meta-gradient "
                              "by design")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
