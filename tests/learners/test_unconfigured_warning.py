"""`fit` and `evaluate` warn (once per learner) when TensorFlow's options are not configured."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter: the options are the process's (the session configures them).
_FRESH_PROCESS = r"""
import json, os, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
import tensorflow as tf
import mgaug_tf as mg
from tests.conftest import make_episode_batch

dataset = tf.data.Dataset.from_tensors(
    make_episode_batch(0, tasks=1, n_way=2, k_shot=1, k_query=1, size=16)).repeat()

def run(fits=2):
    learner = mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=2), 2), 2, inner_steps=1)
    learner.compile(keras.optimizers.SGD(1e-3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(fits):
            learner.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
        learner.evaluate(dataset, steps=1, verbose=0)
    return [{"message": str(w.message), "category": w.category.__name__,
             "filename": w.filename} for w in caught
            if issubclass(w.category, RuntimeWarning) and "configure_tensorflow" in str(w.message)]

seen = {"configured_before": mg.runtime.is_configured(), "unconfigured": run()}
with mg.runtime.tensorflow_options():
    seen["scoped"] = run(fits=1)
seen["after_scope"] = mg.runtime.is_configured()
mg.configure_tensorflow()
seen["configured"] = run()
seen["is_configured"] = mg.runtime.is_configured()
print(json.dumps(seen))
"""


def test_fit_warns_once_per_learner_until_tensorflow_is_configured():
    result = subprocess.run([sys.executable, "-c", _FRESH_PROCESS], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["configured_before"] is False and seen["after_scope"] is False
    assert len(seen["unconfigured"]) == 1  # two fits and an evaluate: one warning
    warning = seen["unconfigured"][0]
    assert warning["category"] == "RuntimeWarning"
    assert warning["filename"] == "<string>"  # points at the caller's fit
    for text in ("arithmetic optimizer and remapper off", "nodes in a cycle",
                 "AlreadyExistsError", "mgaug_tf.configure_tensorflow()",
                 "mgaug_tf.runtime.tensorflow_options()"):
        assert text in warning["message"]
    assert warning["message"].startswith("MAML ")
    assert seen["scoped"] == [] and seen["configured"] == []
    assert seen["is_configured"] is True


def test_is_configured_reads_the_options_in_this_session():
    from mgaug_tf import runtime  # pylint: disable=import-outside-toplevel
    assert runtime.is_configured()  # the session fixture (tests/conftest.py) configured them
    with runtime.tensorflow_options():
        assert runtime.is_configured()
