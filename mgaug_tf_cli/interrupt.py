"""Ctrl-C that always ends a program within seconds, with one line and exit code 130.

CPython runs a Python signal handler only when the main thread comes back to
the interpreter. While TensorFlow builds or runs a large graph (the first
meta-step can take minutes) the main thread stays in C++, so the
`KeyboardInterrupt` of a Ctrl-C would wait until that work ends. Two paths
therefore answer SIGINT:

* the graceful one, in the main thread, where the program can catch it
  (inside `InterruptWatchdog.graceful()`): the handler raises
  `KeyboardInterrupt` as Python's own does, the program reports it (one line)
  and ends; elsewhere (imports, flag parsing) the handler does nothing and
  the watchdog ends the process at once, so no traceback is ever shown;
* the watchdog, in a daemon thread that needs nothing from the main thread:
  `signal.set_wakeup_fd` makes the C-level handler write the signal number to
  a pipe the thread waits on. If the main thread has not started ending the
  process (`claim_exit`) within `grace_seconds` of the first SIGINT, or at a
  second SIGINT, the thread prints the program's line and ends the process
  with `os._exit`.

A hard exit cannot leave a damaged checkpoint behind: TensorFlow writes a
checkpoint's files first and only then (by an atomic rename) the `checkpoint`
state file that names the latest one, so an exit in the middle of a save
leaves the previous checkpoint as the latest, intact
(`mgaug_tf.training.checkpoints`).
"""

import contextlib
import os
import select
import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # docs/cli.md: 128 + SIGINT, as shells report it
GRACE_SECONDS = 3.0

# Re-entrant: a thread that claimed the exit may claim it again; any other thread
# (the watchdog's acquire with a timeout) blocks while it is held.
_exit_lock = threading.RLock()
_installed = []  # a watchdog is watching (claims matter only then)


def claim_exit():
    """Marks that the calling thread is ending the process; the watchdog then stays silent.

    Call it first thing in every path that ends the process (the program's
    error report and its final exit), so that a Ctrl-C answered by the
    graceful path is not reported a second time by the watchdog. Idempotent
    within one thread; another thread blocks until the process ends. Does
    nothing while no watchdog is installed (a program's functions called
    from a test or a notebook).
    """
    if not _installed:
        return
    _exit_lock.acquire()  # pylint: disable=consider-using-with  # held until the process ends


class InterruptWatchdog:
    """Makes SIGINT end the process within `grace_seconds`, whatever the main thread does.

    Args:
        message: Callable returning the one line to print on a hard exit
            (e.g. "mgaug-train: error: interrupted; ..."); called in the
            watchdog thread, so it must not wait for the main thread.
        exit_code: The process's exit code on a hard exit.
        grace_seconds: How long after the first SIGINT the main thread has
            to reach `claim_exit` before the watchdog ends the process.

    `install` must be called from the main thread (Python's rule for
    signal handlers); it replaces the SIGINT handler and the wakeup fd for
    the rest of the process.
    """

    def __init__(self, message, exit_code=EXIT_INTERRUPTED, grace_seconds=GRACE_SECONDS):
        if not callable(message):
            raise TypeError(f"message must be a callable returning a line; got {message!r}.")
        if not grace_seconds > 0:
            raise ValueError(f"grace_seconds must be positive; got {grace_seconds!r}.")
        self.message = message
        self.exit_code = int(exit_code)
        self.grace_seconds = float(grace_seconds)
        self._read_fd = None
        self._stderr_fd = None
        self._graceful = False

    @contextlib.contextmanager
    def graceful(self):
        """Within this block a SIGINT also raises `KeyboardInterrupt` in the main thread."""
        self._graceful = True
        try:
            yield self
        finally:
            self._graceful = False

    @property
    def installed(self):
        return self._read_fd is not None

    def install(self):
        """Installs the SIGINT handler and starts the watchdog thread; returns self."""
        read_fd, write_fd = os.pipe()
        # The C-level handler must never block on a full pipe.
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._handle)
        self._read_fd = read_fd
        _installed.append(self)
        # The line goes to the stderr of now: a block that captures fd 2
        # (`quiet.native_stderr`) would otherwise swallow it.
        self._stderr_fd = os.dup(2)
        threading.Thread(target=self._watch, name="interrupt-watchdog", daemon=True).start()
        return self

    def _wait_for_sigint(self, timeout=None):
        """True when a SIGINT arrived within `timeout` seconds (None: wait for ever)."""
        while True:
            ready, _, _ = select.select([self._read_fd], [], [], timeout)
            if not ready:
                return False
            if signal.SIGINT in os.read(self._read_fd, 512):  # one byte per signal number
                return True

    def _handle(self, signum, frame):
        """The graceful path: what Python's default SIGINT handler does, where it is caught."""
        del signum, frame
        if self._graceful:
            raise KeyboardInterrupt

    def _watch(self):
        self._wait_for_sigint()
        if self._graceful:
            self._wait_for_sigint(self.grace_seconds)  # a second Ctrl-C cuts the wait short
        if not _exit_lock.acquire(timeout=self.grace_seconds):
            # The main thread is ending the process and has printed its own
            # line, but its exit hangs: end it without a second line.
            os._exit(self.exit_code)  # pylint: disable=protected-access
        try:
            line = self.message()
        except Exception as error:  # pylint: disable=broad-except  # exiting anyway
            line = f"interrupted ({type(error).__name__} while describing the run's state)"
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        try:
            os.write(self._stderr_fd, f"\n{line}\n".encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(self.exit_code)  # pylint: disable=protected-access

