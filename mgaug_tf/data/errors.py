"""Errors raised by the data readers.

Both derive from the built-in exception a caller would expect
(`FileNotFoundError`, `ValueError`), so `except ValueError` keeps working.
"""

import re


class DataNotFoundError(FileNotFoundError):
    """The data directory, or the files a format needs inside it, are missing."""


class CorruptDataError(ValueError):
    """A file exists but cannot be read: truncated, corrupt or inconsistent."""


_PIPELINE_ERROR = re.compile(
    r"mgaug_tf\.data\.errors\.(CorruptDataError|DataNotFoundError): (.*?)\s*(?:\n\s*\n|\n\s*\[\[|$)",
    re.DOTALL)


def error_from_pipeline(error):
    """The data error a tf.data input pipeline raised inside `error`, or None.

    An image that fails to load inside the episode pipeline (a Python
    function in tf.data) reaches the caller as a TensorFlow
    `InvalidArgumentError` whose message embeds a Python traceback; this
    returns the package's own error with its one-line message (naming the
    file), for the caller to raise instead.

    Args:
        error: Any exception, typically a `tf.errors.OpError`.

    Returns:
        A `CorruptDataError` or `DataNotFoundError`, or None when `error`
        carries neither.
    """
    match = _PIPELINE_ERROR.search(str(getattr(error, "message", "") or error))
    if match is None:
        return None
    kind = CorruptDataError if match.group(1) == "CorruptDataError" else DataNotFoundError
    return kind(" ".join(match.group(2).split()))
