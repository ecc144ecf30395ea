"""`--intra_op_threads`: the program's TensorFlow thread count, set before its first op."""

import os
import subprocess
import sys

import pytest

from mgaug_tf import config
from mgaug_tf_cli import train

SCRIPT = """
import tensorflow as tf
from mgaug_tf import config
from mgaug_tf_cli import train
train.set_op_threads(config.RuntimeConfig(intra_op_threads={threads}))
print(tf.config.threading.get_intra_op_parallelism_threads(), float(tf.constant(1.0) + 1.0))
"""


@pytest.mark.parametrize("threads, printed", [(1, "1 2.0"), (None, "0 2.0")])
def test_a_fresh_process_runs_with_the_configured_thread_count(threads, printed):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(threads=threads)],
                            capture_output=True, text=True, check=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.stdout.split("\n")[-2] == printed


def test_a_started_tensorflow_is_one_error_naming_the_flag():
    import tensorflow as tf  # the test process has run TensorFlow ops already

    tf.constant(1.0) + 1.0
    current = tf.config.threading.get_intra_op_parallelism_threads()
    train.set_op_threads(config.RuntimeConfig(intra_op_threads=current or None))  # no change
    with pytest.raises(train.ConfigError, match=r"--intra_op_threads=\d+: TensorFlow has "
                                                r"already started in this process"):
        train.set_op_threads(config.RuntimeConfig(intra_op_threads=current + 7))
