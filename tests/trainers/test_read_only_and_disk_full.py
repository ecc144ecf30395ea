"""mgaug-train with a model_dir it cannot write, and with a disk that fills up mid-run."""

import builtins
import errno
import os
import shutil
import stat
import sys

import pytest
import tensorflow as tf

from mgaug_tf.training import files
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import GLYPHS, checkpoint_tensors


def _run(capsys, monkeypatch, *args):
    """`mgaug-train args` in this process: (exit code, stdout, stderr)."""
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(sys, "argv", ["mgaug-train"])  # the name in its error lines
    try:
        train.run_and_report(run_flags.parse_config(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def _tree(folder):
    """{relative path: (size, mtime)} of every file and folder below `folder`."""
    entries = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(root, name)
            status = os.stat(path)
            entries[os.path.relpath(path, folder)] = (status.st_size, status.st_mtime_ns)
    return entries


def _make_read_only(monkeypatch, folder):
    """Refuses this process's writes below `folder` as a read-only folder does (EACCES).

    Tests run as root here, where `chmod a-w` denies nothing, so the file
    opens of Python code (the lock, JSON files, the write probe) are refused
    instead; TensorFlow's own writes are not intercepted, which `_tree`
    comparisons catch.
    """
    folder = os.path.abspath(folder)
    real_os_open, real_open = os.open, builtins.open

    def inside(path):
        path = os.path.abspath(os.fspath(path))
        return path == folder or path.startswith(folder + os.sep)

    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") \
                and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(builtins, "open", guarded_open)


def _read_only_copy(reference_run, tmp_path, monkeypatch):
    """A finished run copied to `tmp_path` (no lock), then made read-only: (folder, its `_tree`)."""
    run = tmp_path / "finished"
    shutil.copytree(reference_run, run)
    (run / files.LOCK_FILE).unlink(missing_ok=True)
    before = _tree(run)
    _make_read_only(monkeypatch, run)
    return run, before


def test_a_read_only_run_is_evaluated_without_a_lock_but_not_trained_or_exported_into(
        reference_run, tmp_path, monkeypatch, capsys):
    run, before = _read_only_copy(reference_run, tmp_path, monkeypatch)

    # Evaluation: the result is printed; nothing (no lock, no JSON) is written.
    # (The run's flags.cfg first: it names the run's own mode and model_dir.)
    code, out, err = _run(capsys, monkeypatch, f"--flagfile={run / 'flags.cfg'}", "--mode=eval",
                          f"--model_dir={run}")
    assert code == 0 and "Traceback" not in err, err
    assert "test: " in out and "(95 % CI, 6 episodes)" in out
    assert f"Not written to --model_dir={run} ({run}: [Errno 13] Permission denied)." in out
    assert _tree(run) == before

    # Export to the default place inside the run: refused in one line before any work.
    code, out, err = _run(capsys, monkeypatch, f"--flagfile={run / 'flags.cfg'}", "--mode=export",
                          f"--model_dir={run}")
    assert code == 2 and _error_lines(err) == [
        f"mgaug-train: error: --model_dir={run} (the SavedModel's default place, "
        f"{run / 'export'}) cannot be written ({run}: [Errno 13] Permission denied); pass "
        "--export_dir=FOLDER you can write to."]

    # Training (resuming it, or a new run inside it): refused in one line.
    for model_dir in (run, run / "new"):
        code, out, err = _run(capsys, monkeypatch, *GLYPHS, "--train_steps=8",
                              f"--model_dir={model_dir}", "--mode=train")
        assert code == 2 and _error_lines(err) == [
            f"mgaug-train: error: --model_dir={model_dir} cannot be written ({run}: [Errno 13] "
            "Permission denied); training writes its checkpoints, summaries and config there: "
            "use a folder you can write to."], err
    assert _tree(run) == before


@pytest.mark.slow  # an export: about 13 s
def test_a_read_only_run_exports_to_a_folder_of_its_own(reference_run, tmp_path, monkeypatch,
                                                         capsys):
    run, before = _read_only_copy(reference_run, tmp_path, monkeypatch)
    code, _, err = _run(capsys, monkeypatch, f"--flagfile={run / 'flags.cfg'}", "--mode=export",
                        f"--model_dir={run}", f"--export_dir={tmp_path / 'elsewhere'}")
    assert code == 0 and (tmp_path / "elsewhere" / "saved_model.pb").is_file(), err
    assert _tree(run) == before


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_rerun_resumes(
        tmp_path, monkeypatch, capsys):
    if not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)):
        pytest.skip("needs /dev/full, whose writes fail with ENOSPC as on a full disk")
    model_dir = tmp_path / "model"
    args = [*GLYPHS, "--dataset=builtin", "--train_steps=4", "--checkpoint_every=1",
            "--eval_every=4", "--val_episodes=1", "--summary_every=1", "--mode=train",
            f"--model_dir={model_dir}"]
    real_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == 3:  # TensorFlow's own error for a write to a full disk
            tf.io.write_file("/dev/full", tf.constant("x" * 65536))
        return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    code, _, err = _run(capsys, monkeypatch, *args)
    assert code == 2 and _error_lines(err) == [
        "mgaug-train: error: No space left on device: cannot write /dev/full. The last "
        f"complete checkpoint, {model_dir / 'ckpt-2'} (step 2), is intact: free space on that "
        "disk and rerun the same command to resume from it."]
    assert tf.train.latest_checkpoint(str(model_dir)) == str(model_dir / "ckpt-2")
    assert checkpoint_tensors(model_dir / "ckpt-2")["step/.ATTRIBUTES/VARIABLE_VALUE"] == 2

    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    code, out, err = _run(capsys, monkeypatch, *args)
    assert code == 0, err
    assert out.startswith("maml on builtin (")  # the dataset as given (glyphs' alias)
    assert f"Resuming from step 2 ({model_dir / 'ckpt-2'})." in out
    assert tf.train.latest_checkpoint(str(model_dir)) == str(model_dir / "ckpt-4")
