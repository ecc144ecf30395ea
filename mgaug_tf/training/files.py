"""Atomic file writes (a reader or a killed run never sees half a file), the run lock, and
the checks that a folder can be written and that a write failed on a full disk."""

import errno
import json
import os
import socket
import tempfile
import time

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", also in TensorFlow's errors


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename.

    Raises:
        OSError: The write failed; its `filename` names the file written.
    """
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        if error.filename is None:  # a failed write() or close() names no file
            raise OSError(error.errno, error.strerror, temporary) from error
        raise
    os.replace(temporary, path)


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path`, atomically."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_problem(folder):
    """Why files cannot be created in `folder`, or None if they can.

    A folder that does not exist yet is judged by its nearest existing
    parent (where it would be created). The test creates and deletes a real
    temporary file, so read-only mounts are found as well as permissions.

    Returns:
        None, or e.g. "/runs/x: [Errno 13] Permission denied".
    """
    probe = os.path.abspath(folder)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        return f"{probe}: [Errno {error.errno}] {error.strerror}"
    return None


def disk_full_path(error):
    """The file that a full disk kept from being written, if `error` (or its cause) says so.

    Recognises an `OSError` with errno ENOSPC and TensorFlow's errors (a
    `ResourceExhaustedError` from a checkpoint or summary write), whose
    message reads "<file>; No space left on device".

    Returns:
        The file's path; "" when the error names none; None when `error` is
        not a full disk.
    """
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return error.filename or ""
        text = str(getattr(error, "message", None) or error)
        if NO_SPACE in text:
            head = text.split(f"; {NO_SPACE}", 1)[0] if f"; {NO_SPACE}" in text else ""
            return head.rsplit("}} ", 1)[-1].strip()  # after TensorFlow's "{{function_node ...}}"
        error = error.__cause__ or error.__context__
    return None


LOCK_FILE = "run.lock"


class RunLockedError(RuntimeError):
    """Another live run holds the model_dir's lock."""


class RunLock:
    """`model_dir/run.lock`: at most one live run writes a model_dir.

    The file holds the owner's pid, host and start time. It is created
    atomically (`O_CREAT | O_EXCL`); a lock whose pid no longer runs on this
    host is stale (a run killed with SIGKILL) and is taken over. A lock from
    another host cannot be checked and is refused, naming the file to delete
    if that run is gone.

    Example:
        >>> lock = RunLock("runs/demo").acquire()   # RunLockedError if taken
        >>> ...                                    # train, evaluate, export
        >>> lock.release()

    Attributes:
        path: The lock file.
        stale_owner: Description of the stale lock taken over, or None.
    """

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        self.stale_owner = None
        self._held = False

    @staticmethod
    def _owner_text():
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")})

    def _read_owner(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.loads(handle.read())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True

    def acquire(self):
        """Takes the lock; returns self.

        Raises:
            RunLockedError: A live run (or one on another host) holds it.
        """
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read_owner()
                if owner is None:  # being written right now, or unreadable
                    time.sleep(0.2)
                    owner = self._read_owner()
                described = (f"pid {owner.get('pid')} on {owner.get('host')} since "
                             f"{owner.get('started')}" if owner else "an unreadable lock")
                if (owner and owner.get("host") == socket.gethostname()
                        and isinstance(owner.get("pid"), int) and not self._alive(owner["pid"])):
                    self.stale_owner = described
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                raise RunLockedError(
                    f"another run is using it ({described}, lock file {self.path}). Wait for "
                    "it to end or use another --model_dir; if that run is gone (another host "
                    "cannot be checked from here), delete the lock file.") from None
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(self._owner_text())
            self._held = True
            return self
        raise RunLockedError(f"cannot take the lock {self.path}; other runs keep taking it.")

    def release(self):
        """Removes the lock file if this process holds it."""
        if self._held:
            owner = self._read_owner()
            if owner and owner.get("pid") == os.getpid():
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
            self._held = False
