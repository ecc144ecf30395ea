"""Shared pieces of the result tests: tiny real runs of `trainers/run.py`."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "trainers" / "run.py"
REPORT = REPO / "trainers" / "report.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cli_env():
    """The environment of a CLI subprocess: quiet TensorFlow, no cluster config."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    return env


def start_run(model_dir, *flags):
    """Starts `trainers/run.py --model_dir=model_dir flags...`; returns the `Popen`.

    Output goes to `model_dir.log` (a file, so no pipe can fill up).
    """
    with open(f"{model_dir}.log", "w") as log:
        return subprocess.Popen([sys.executable, str(RUN), f"--model_dir={model_dir}", *flags],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=cli_env())


def finish(process, model_dir, timeout):
    """Waits for `process`; fails with its log when it exits non-zero."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"run.py --model_dir={model_dir} took over {timeout} s:\n"
                             + Path(f"{model_dir}.log").read_text()[-3000:]) from None
    if code != 0:
        raise AssertionError(f"run.py --model_dir={model_dir} exited {code}:\n"
                             + Path(f"{model_dir}.log").read_text()[-3000:])
