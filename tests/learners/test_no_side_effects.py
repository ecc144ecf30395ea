"""Learners leave alone what they are given and what they do not own.

TensorFlow's process-wide options change only through `mgaug_tf.runtime`;
a network or an `MGAug` shared by learners keeps its attributes.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import runtime
from tests.conftest import make_episode_batch

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: the options are the process's, and other tests
# in this session may have set them.
_FRESH_PROCESS = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
import numpy as np
import tensorflow as tf
import mgaug_tf as mg
from tests.conftest import make_episode_batch

before = tf.config.optimizer.get_experimental_options()
keras.utils.set_random_seed(0)
learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, inner_steps=1,
                  augmentation=mg.MGAug("catfish", num_subnets=2))
learner.compile(keras.optimizers.Adam(1e-3))
batch = make_episode_batch(0, tasks=2, n_way=3, k_shot=1, k_query=1, size=16)
dataset = tf.data.Dataset.from_tensors(batch).repeat()
history = learner.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0).history
after_learner = tf.config.optimizer.get_experimental_options()
plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
plain.compile("sgd", "mse")
plain.fit(np.ones((8, 4), "float32"), np.ones((8, 1), "float32"), epochs=1, verbose=0)
print(json.dumps({"before": before, "after_learner": after_learner,
                  "after_plain": tf.config.optimizer.get_experimental_options(),
                  "loss": float(history["loss"][-1])}))
"""


def test_training_a_learner_leaves_tensorflow_options_as_they_were():
    result = subprocess.run([sys.executable, "-c", _FRESH_PROCESS], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert np.isfinite(seen["loss"])
    assert seen["after_learner"] == seen["before"]
    assert seen["after_plain"] == seen["before"]
    for name in runtime.GRAPPLER_OPTIONS:  # TensorFlow's defaults: not switched off
        assert seen["before"].get(name, True) is True


def test_tensorflow_options_scope_sets_and_restores_the_options():
    original = tf.config.optimizer.get_experimental_options()
    try:
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})
        before = tf.config.optimizer.get_experimental_options()
        with runtime.tensorflow_options():
            inside = tf.config.optimizer.get_experimental_options()
            assert inside["arithmetic_optimization"] is False
            assert inside["remapping"] is False
        assert tf.config.optimizer.get_experimental_options() == before
        runtime.configure_tensorflow()
        configured = tf.config.optimizer.get_experimental_options()
        assert configured["arithmetic_optimization"] is False
        assert configured["remapping"] is False
    finally:
        _reset_options(original)


def _reset_options(options):
    # Leaves the session's options as this module found them.
    runtime._restore_options(options)  # pylint: disable=protected-access


def test_tensorflow_options_scope_restores_unset_options_and_survives_errors():
    original = tf.config.optimizer.get_experimental_options()
    try:
        runtime._restore_options({})  # pylint: disable=protected-access
        before = tf.config.optimizer.get_experimental_options()
        assert "remapping" not in before and "arithmetic_optimization" not in before
        try:
            with runtime.tensorflow_options():
                raise KeyError("inside")
        except KeyError:
            pass
        assert tf.config.optimizer.get_experimental_options() == before
    finally:
        _reset_options(original)


def _public_attributes(obj):
    return {name: repr(value) for name, value in vars(obj).items()
            if not name.startswith("_")}


def test_one_mgaug_and_one_network_shared_by_protonet_and_maml_keep_their_settings():
    keras.utils.set_random_seed(0)
    augmentation = mg.MGAug("catfish", num_subnets=2, parity=True, resolutions=(32, 16))
    sampler = augmentation.keep_ratio_sampler
    augmentation_before = _public_attributes(augmentation)
    sampler_before = _public_attributes(sampler)
    backbone = mg.Conv4(filters=2)
    network = mg.FewShotClassifier(backbone, 3)
    network_before = (network.flatten_head, backbone.pooling,
                      [norm.fused for _, norm, _, _ in backbone.blocks])
    maml = mg.MAML(network, 3, inner_steps=1, augmentation=augmentation)
    protonet = mg.ProtoNet(backbone, 3, augmentation=augmentation)
    # Each learner holds what the shared MGAug resolved for it.
    assert maml.augmentation_settings.flatten_head == "reference"
    assert protonet.augmentation_settings.flatten_head is None
    assert maml.augmentation_settings.keep_ratio_sampler.cap == 0.999
    assert protonet.augmentation_settings.keep_ratio_sampler.cap == 0.99
    maml.build((32, 32, 1))
    protonet.build((32, 32, 1))
    batch = make_episode_batch(0, tasks=1, n_way=3, k_shot=1, k_query=1, size=32)
    for learner in (maml, protonet):
        _, gradients = learner.compute_meta_gradients(batch)
        assert all(np.all(np.isfinite(gradient)) for gradient in gradients)
        seed = augmentation.task_seed(learner, 0)
        ratios = augmentation.keep_ratios(learner, seed).numpy()
        assert ratios.max() <= learner.augmentation_settings.keep_ratio_sampler.cap
    # Nothing of the shared objects changed.
    assert _public_attributes(augmentation) == augmentation_before
    assert augmentation.keep_ratio_sampler is sampler and sampler.cap is None
    assert _public_attributes(sampler) == sampler_before
    assert (network.flatten_head, backbone.pooling,
            [norm.fused for _, norm, _, _ in backbone.blocks]) == network_before
    # The MAML learner's sub-networks at 16 px use the reference head rule.
    task = maml._split_tasks(batch)[0]  # pylint: disable=protected-access
    small = mg.episodes.Task(*(tf.image.resize(field, (16, 16)) if len(field.shape) == 4
                               else field for field in task))
    assert maml.task_outcome(small).query_logits.shape == (3, 3)
