"""A terminal progress bar with ETA and the current metrics."""

import sys
import time


def format_duration(seconds):
    """`3725` -> `"1:02:05"`, `65` -> `"1:05"`."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar:
    """`step 120/1000 [===>      ] 12% ETA 3:21 | loss 1.234 | accuracy 0.456`.

    On a terminal the line is redrawn in place; otherwise (a log file) a line
    is printed every `log_every_seconds`. The ETA uses the steps done since
    this bar started, so it is right after a resume as well.

    Args:
        total: Last step.
        initial: Step the run starts from (resumed runs).
        stream: Where to write (stdout by default).
        log_every_seconds: Line interval when `stream` is not a terminal.
        enabled: False makes every call a no-op (processes other than the chief).
    """

    def __init__(self, total, initial=0, stream=None, log_every_seconds=30.0, enabled=True):
        self.total = int(total)
        self.initial = int(initial)
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every_seconds = log_every_seconds
        self._start = time.perf_counter()
        self._first_step_done = None
        self._last_draw = 0.0

    def _eta(self, step):
        # The first step after a (re)start includes tracing: time from its end.
        now = time.perf_counter()
        if self._first_step_done is None:
            self._first_step_done = (now, step)
            return None
        since, since_step = self._first_step_done
        if step <= since_step:
            return None
        return (now - since) / (step - since_step) * (self.total - step)

    def update(self, step, values=None):
        """Shows `step` and `values` (`{name: float}`)."""
        if not self.enabled:
            return
        eta = self._eta(step)
        now = time.perf_counter()
        last = step >= self.total
        if not self.interactive and not last and now - self._last_draw < self.log_every_seconds:
            return
        self._last_draw = now
        fraction = step / max(self.total, 1)
        width = 24
        filled = int(width * fraction)
        bar = "=" * filled + (">" if filled < width else "") + " " * max(width - filled - 1, 0)
        timing = (f"ETA {format_duration(eta)}" if eta is not None and not last
                  else f"{format_duration(now - self._start)} elapsed")
        metrics = " | ".join(f"{name} {value:.4g}" for name, value in (values or {}).items())
        line = (f"step {step}/{self.total} [{bar}] {100 * fraction:3.0f}% {timing}"
                + (f" | {metrics}" if metrics else ""))
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if last else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text):
        """Prints `text` on its own line without breaking the bar."""
        if not self.enabled:
            return
        self.stream.write(("\r\x1b[K" if self.interactive else "") + text + "\n")
        self.stream.flush()
