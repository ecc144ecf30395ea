"""No configuration of the benchmark suite retraces its meta-step after the first step.

Each configuration kind of `benchmarks/meta_step.py` (learner x MGAug
strategy x backbone x stored/recomputed inner steps), shrunk to tiny
shapes (ResNet-12 kinds in the slow run), runs three steps on three different batches; MGAug's draws change
with the meta-step each time, and the step must keep its one trace.
"""

import pytest
import tensorflow as tf

import mgaug_tf
from benchmarks import meta_step
from mgaug_tf import config


def configuration_kinds():
    """The suites' configurations, one per kind (shapes and K do not change tracing)."""
    kinds = set()
    for suite in meta_step.SUITES.values():
        for row in suite:
            experiment = config.override(meta_step.BASE, row.overrides)
            model = experiment.model
            kinds.add((model.learner.name, model.backbone.name, model.mgaug.strategy,
                       model.learner.recompute, bool(model.mgaug.resolutions)))
    return sorted(kinds)


KINDS = configuration_kinds()


def test_the_suites_cover_the_main_kinds():
    assert len(KINDS) >= 16
    assert {kind[0] for kind in KINDS} == {"maml", "fomaml", "protonet"}
    assert {kind[2] for kind in KINDS} == {"none", "catfish", "random_param"}
    # The released settings: resolutions drawn at run time, flatten head (MAML, FOMAML).
    assert {kind[0] for kind in KINDS if kind[4]} == {"maml", "fomaml", "protonet"}


# ResNet-12's second-order graphs take most of a minute each to trace on 2 cores.
# Drawn resolutions trace the sub-networks with unknown sizes (~30 s each):
# MAML's in the default run, FOMAML's and ProtoNet's in the slow one.
PARAMS = [pytest.param(kind, id="-".join(map(str, kind)),
                       marks=[pytest.mark.slow] if kind[1] == "resnet12"
                       or (kind[4] and kind[0] != "maml") else [])
          for kind in KINDS]


@pytest.mark.parametrize("kind", PARAMS)
def test_meta_step_traces_once(kind):
    learner_name, backbone, strategy, recompute, resolutions = kind
    size = 32 if resolutions else 16
    filters = "4,4,4,4" if backbone == "resnet12" else "4"
    argv = [f"--learner={learner_name}", f"--backbone={backbone}", f"--image_size={size}",
            "--channels=1", f"--filters={filters}", "--n_way=3", "--k_shot=1", "--k_query=1",
            "--meta_batch_size=2", "--inner_steps=1", "--num_subnets=1", f"--mgaug={strategy}"]
    argv += ["--recompute"] * recompute
    # Sizes drawn at run time (grids 2 x 2 and 1 x 1): the step still traces once.
    argv += ["--num_subnets=2", "--resolutions=32,16", "--mgaug_parity"] * resolutions
    experiment, options = meta_step.parse(argv)
    mgaug_tf.configure_tensorflow()
    learner = meta_step.build_learner(experiment, options)
    step = tf.function(learner.train_step)
    for seed in range(3):
        logs = step(meta_step.random_batch(experiment, options, seed))
        assert tf.math.is_finite(logs["loss"])
    assert int(learner.meta_step.numpy()) == 3
    assert step.experimental_get_tracing_count() == 1
