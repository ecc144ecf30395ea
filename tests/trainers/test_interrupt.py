"""Ctrl-C ends `mgaug-train` within seconds, with one line and exit code 130, at any point."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from mgaug_tf_cli import interrupt
from tests.trainers.conftest import GLYPHS, REPO, cli_env, wait_for

# The watchdog's grace plus the time to print and exit on a loaded machine.
EXIT_BOUND_S = interrupt.GRACE_SECONDS + 4.0


def _start(args, tmp_path, name):
    """`python -m mgaug_tf_cli.train ARGS` with its streams in files.

    Run as a user runs it: without TF_CPP_MIN_LOG_LEVEL, so the program
    filters TensorFlow's start-up lines itself.
    """
    out, err = tmp_path / f"{name}.stdout", tmp_path / f"{name}.stderr"
    env = cli_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "mgaug_tf_cli.train", *args],
                                   stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    return process, out, err


def _interrupt(process, wait_s=EXIT_BOUND_S):
    """Sends SIGINT; returns (exit code, seconds to exit); kills the process past `wait_s`."""
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {wait_s} s after SIGINT")
    return code, time.monotonic() - sent


def _python(script, tmp_path):
    """A Python process running `script` (which prints "ready" once set up)."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    process = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO)
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


def test_the_watchdog_ends_a_process_whose_main_thread_never_returns(tmp_path):
    """A main thread that swallows KeyboardInterrupt stands for one held in C++ for minutes."""
    process = _python("""
        import time
        from mgaug_tf_cli import interrupt
        watchdog = interrupt.InterruptWatchdog(lambda: "prog: error: interrupted; line",
                                               grace_seconds=1.0).install()
        with watchdog.graceful():
            caught = 0
            while True:
                try:
                    if not caught:
                        print("ready", flush=True)
                    time.sleep(60)
                except KeyboardInterrupt:
                    caught += 1
                    print(f"caught {caught}", flush=True)
        """, tmp_path)
    code, seconds = _interrupt(process)
    stdout, stderr = process.communicate()
    assert code == interrupt.EXIT_INTERRUPTED == 130
    assert 1.0 <= seconds < EXIT_BOUND_S
    assert stdout == "caught 1\n"  # the graceful path ran first and was ignored
    assert stderr == "\nprog: error: interrupted; line\n"


def test_a_second_sigint_ends_it_at_once_and_a_claimed_exit_keeps_the_watchdog_silent(
        tmp_path):
    process = _python("""
        import time
        from mgaug_tf_cli import interrupt
        interrupt.InterruptWatchdog(lambda: "prog: error: interrupted",
                                    grace_seconds=60.0).install().graceful().__enter__()
        ready = False
        while True:
            try:
                if not ready:
                    ready = True
                    print("ready", flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                pass
        """, tmp_path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    code, seconds = _interrupt(process)
    assert (code, process.stderr.read()) == (130, "\nprog: error: interrupted\n")
    assert seconds < 3.0  # not the 60 s grace

    process = _python("""
        import os, time
        from mgaug_tf_cli import interrupt
        watchdog = interrupt.InterruptWatchdog(lambda: "prog: watchdog line",
                                               grace_seconds=0.5).install()
        with watchdog.graceful():
            try:
                print("ready", flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                interrupt.claim_exit()
                print("main's own line", flush=True)
                time.sleep(0.2)
                os._exit(7)
        """, tmp_path)
    code, _ = _interrupt(process)
    assert (code, process.stdout.read(), process.stderr.read()) == (7, "main's own line\n", "")


def test_ctrl_c_while_tensorflow_loads_gives_one_line_and_no_traceback(tmp_path):
    process, _, err = _start(["--dataset=glyphs", f"--model_dir={tmp_path / 'run'}"], tmp_path,
                             "import")
    time.sleep(1.0)  # importing TensorFlow takes longer than this
    code, seconds = _interrupt(process)
    stderr = err.read_text()
    assert code == 130, stderr
    assert seconds < EXIT_BOUND_S
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["train.py: error: interrupted; rerun the same command."]
    assert not (tmp_path / "run").exists()


# 256 px glyphs make the first meta-step take minutes: SIGINT lands while it is
# traced, compiled or run.
SLOW_FIRST_STEP = ["--flagfile=configs/demo.cfg", "--image_size=256", "--mode=train",
                   "--train_steps=3"]


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.0, 8.0])
def test_ctrl_c_during_the_first_meta_step_ends_the_run_within_seconds(tmp_path, delay_s):
    model_dir = tmp_path / "run"
    process, out, err = _start([*SLOW_FIRST_STEP, f"--model_dir={model_dir}"], tmp_path,
                               "first_step")
    try:
        wait_for(lambda: "Building the meta-step graph" in out.read_text(), timeout=180,
                 what="the first meta-step to start")
    except Exception:
        process.kill()
        raise
    time.sleep(delay_s)
    assert process.poll() is None
    code, seconds = _interrupt(process)
    stderr = err.read_text()
    assert code == 130, stderr
    assert seconds < EXIT_BOUND_S
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "train.py: error: interrupted before the first checkpoint; rerun the same command to "
        "start again.")


@pytest.mark.slow
def test_an_interrupted_run_names_its_last_intact_checkpoint_and_resumes_from_it(tmp_path):
    """SIGINT while checkpoints are written every step: the one named is complete."""
    model_dir = tmp_path / "run"
    args = [*GLYPHS, "--train_steps=100000", "--checkpoint_every=1", "--eval_every=100000",
            "--mode=train", f"--model_dir={model_dir}"]
    process, _, err = _start(args, tmp_path, "checkpoints")
    try:
        wait_for(lambda: tf.train.latest_checkpoint(str(model_dir)) is not None
                 and int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1]) >= 3,
                 timeout=180, what="three checkpoints")
    except Exception:
        process.kill()
        raise
    code, _ = _interrupt(process)
    assert code == 130
    line = err.read_text().strip().splitlines()[-1]
    latest = tf.train.latest_checkpoint(str(model_dir))
    step = int(latest.rsplit("-", 1)[1])
    assert line == (f"train.py: error: interrupted; rerun the same command to resume from "
                    f"step {step} ({latest}).")
    reader = tf.train.load_checkpoint(latest)  # complete: its index and data read back
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == step
    assert os.path.exists(latest + ".index")
