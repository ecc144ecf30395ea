"""Quiet start-up for the command-line entry points (imports no TensorFlow).

TensorFlow prints lines on every start that tell a user nothing about their
run: the oneDNN notice, CPU-feature hints, "could not find cuda drivers" and
`cuInit` errors on machines without a GPU. Most are written by native code
before TensorFlow's own log level (`TF_CPP_MIN_LOG_LEVEL`) applies, so the
entry points filter those known lines out of the native stderr while
TensorFlow loads and picks its devices. A user who sets
`TF_CPP_MIN_LOG_LEVEL` themselves (for example to 0 to debug) gets every line.
"""

import contextlib
import os
import re
import sys
import tempfile

# Set by `configure()` when the user had not set TF_CPP_MIN_LOG_LEVEL.
_FILTERING = {"on": False}

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_dnn|"
    r"cuda_fft|cuda_blas|cuda_executor|computation_placer|dso_loader)\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|TF-TRT Warning: Could not find TensorRT")


def configure():
    """Sets TensorFlow's log level to warnings-off (2) unless the user set it; call first."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        _FILTERING["on"] = True


def child_environment():
    """The environment for a child program: the user's, without what `configure()` set.

    A child that is itself a program (`mgaug-study` starts `mgaug-train`)
    then filters its own start-up noise instead of taking the log level as
    the user's choice.
    """
    env = dict(os.environ)
    if _FILTERING["on"]:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


@contextlib.contextmanager
def native_stderr():
    """Drops TensorFlow's start-up noise from what native code writes to stderr meanwhile.

    Everything else written to stderr (by Python or native code) is passed
    on, in order, when the block ends.
    """
    if not _FILTERING["on"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not NOISE.search(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def program_name():
    """The name the user ran (`mgaug-train`, or `run.py` in a checkout), for error lines."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "mgaug"
