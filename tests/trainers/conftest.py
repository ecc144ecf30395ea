"""Shared pieces of the trainer tests: running the CLI, the reference run, checkpoints."""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf_cli import flags as run_flags

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "trainers" / "run.py"
PREDICT = REPO / "trainers" / "predict.py"

# A tiny run that still has every moving part: second-order MAML with catfish
# MGAug, inductive batch norm (moving statistics are trained and must agree
# across replicas), SGD with momentum (optimizer slots to checkpoint),
# validation, best checkpoint, evaluation and export. SGD rather than Adam in
# the comparisons across devices: Adam turns the float noise in the
# (theoretically zero) gradients of conv biases before batch norm into
# full-size steps.
REFERENCE_FLAGS = [
    "--dataset=glyphs", "--image_size=16", "--learner=maml", "--filters=8", "--n_way=3",
    "--k_shot=1", "--k_query=2", "--meta_batch_size=2", "--inner_steps=1", "--inner_lr=0.4",
    "--eval_inner_steps=2", "--bn_mode=inductive", "--mgaug=catfish", "--num_subnets=1",
    "--outer_optimizer=sgd", "--outer_lr=0.05", "--outer_momentum=0.9", "--train_steps=6",
    "--eval_every=3", "--val_episodes=4", "--eval_episodes=6", "--checkpoint_every=2",
    "--summary_every=2", "--mode=train_and_eval",
]
TIMEOUT_S = 300
# Small glyph runs for in-process checks.
GLYPHS = ["--dataset=glyphs", "--image_size=16", "--filters=4", "--n_way=3", "--k_query=2",
          "--meta_batch_size=2", "--inner_steps=1"]


def call_train(argv):
    """`mgaug-train` on `argv` in this process: `(exit code, stdout, stderr)`."""
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            train.run_and_report(run_flags.parse_config(argv))
        except SystemExit as exit_info:
            code = exit_info.code
    return code, out.getvalue(), err.getvalue()


def cli_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


class Cli:
    """A `trainers/*.py` process whose output goes to files (no pipe can fill up)."""

    def __init__(self, script, args, log_dir, name, env=None, cwd=REPO):
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([sys.executable, str(script), *args], stdout=out,
                                            stderr=err, env=env or cli_env(), cwd=cwd)

    def wait(self, timeout=TIMEOUT_S):
        """Waits for the exit code; kills the process if it runs past `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    @property
    def stdout(self):
        return self.stdout_path.read_text()

    @property
    def stderr(self):
        return self.stderr_path.read_text()

    def check(self, timeout=TIMEOUT_S):
        code = self.wait(timeout)
        assert code == 0, f"exit code {code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        return self


def run_cli(script, args, log_dir, name, **kwargs):
    """Runs a CLI to completion (killed if it hangs) and returns the `Cli`."""
    cli = Cli(script, args, log_dir, name, **kwargs)
    try:
        cli.wait()
    finally:
        cli.kill()
    return cli


def wait_for(predicate, timeout=TIMEOUT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def checkpoint_tensors(path):
    """`{name: array}` of every saved tensor of a checkpoint."""
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(path))
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def max_difference(first, second, only=""):
    """Largest absolute difference between two checkpoints' tensors named with `only`."""
    assert first.keys() == second.keys()
    return max(float(np.max(np.abs(first[name].astype(np.float64)
                                   - second[name].astype(np.float64))))
               for name in first if only in name)


class ReferenceRuns:
    """The reference run and the runs compared with it, started together.

    The reference (one device), the same run mirrored on 2 logical CPUs, and
    the same run killed with SIGKILL after its first checkpoint then rerun,
    run side by side (a thread does the kill and the rerun).
    """

    def __init__(self, root):
        self.root = root
        self.clis = {}
        self.model_dirs = {name: root / name for name in ("reference", "mirrored", "killed")}
        self.killed_cli = None
        self._killer_error = None
        self._start("reference")
        self._start("mirrored", "--strategy=mirrored", "--cpu_devices=2")
        self._killer = threading.Thread(target=self._kill_then_rerun, daemon=True)
        self._killer.start()

    def _start(self, name, *extra, log_name=None):
        self.clis[log_name or name] = Cli(
            RUN, REFERENCE_FLAGS + [f"--model_dir={self.model_dirs[name]}", *extra], self.root,
            log_name or name)
        return self.clis[log_name or name]

    def _kill_then_rerun(self):
        try:
            victim = self.killed_cli = self._start("killed", log_name="killed_first")
            try:
                wait_for(lambda: (self.model_dirs["killed"] / "checkpoint").exists()
                         or victim.process.poll() is not None, what="the first checkpoint")
            finally:
                victim.kill()
            self._start("killed", log_name="killed")
        except Exception as error:  # pylint: disable=broad-except  # re-raised in the test
            self._killer_error = error

    def finished(self, name):
        """Waits for run `name` to succeed; returns its `Cli` and model_dir."""
        if name == "killed":
            self._killer.join(TIMEOUT_S)
            if self._killer_error is not None:
                raise self._killer_error
        return self.clis[name].check(), self.model_dirs[name]

    def stop(self):
        self._killer.join(TIMEOUT_S)
        for cli in self.clis.values():
            cli.kill()


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory):
    runs = ReferenceRuns(tmp_path_factory.mktemp("reference_runs"))
    yield runs
    runs.stop()


@pytest.fixture(scope="session")
def reference_run(reference_runs):
    """The reference run's model_dir (one device, uninterrupted)."""
    return reference_runs.finished("reference")[1]


@pytest.fixture
def run_main(capsys, tmp_path):
    """Runs `mgaug-train`'s config through `train.run_and_report` in this process.

    Returns `call(*flags, model_dir=None) -> (exit code, stderr, model_dir)`.
    """
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel

    def call(*args, model_dir=None):
        model_dir = model_dir or tmp_path / "model"
        experiment_config = run_flags.parse_config([f"--model_dir={model_dir}", *args])
        try:
            train.run_and_report(experiment_config)
            code = 0
        except SystemExit as exit_info:
            code = exit_info.code
        return code, capsys.readouterr().err, model_dir

    return call
