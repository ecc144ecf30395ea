"""Errors raised by the data readers.

Each derives from the built-in exception a caller would expect
(`FileNotFoundError`, `ValueError`), so `except ValueError` keeps working.
"""

import re


class DataNotFoundError(FileNotFoundError):
    """The data directory, or the files a format needs inside it, are missing."""


class CorruptDataError(ValueError):
    """A file exists but cannot be read: truncated, corrupt or inconsistent."""


class OptionError(ValueError):
    """Arguments of `load` that a dataset does not take.

    `data_dir` given to a generated dataset, or options it lacks. The
    attributes let a caller that built the arguments from its own settings
    (mgaug-train's flags) name those settings instead.

    Attributes:
        dataset: The dataset's name.
        arguments: The refused arguments, as `load` spells them (a tuple).
        accepted: The options the dataset takes (a tuple).
    """

    def __init__(self, message, dataset, arguments, accepted=()):
        super().__init__(message)
        self.dataset = dataset
        self.arguments = tuple(arguments)
        self.accepted = tuple(accepted)


def counted(count, noun, plural=None):
    """`count` and `noun` in the number it takes, for messages: "1 class", "2 classes".

    Args:
        count: An int.
        noun: The singular.
        plural: The plural when it is not `noun + "s"`.
    """
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


# Items named in a message, at most; the rest are counted.
SHOWN = 10


def short_listing(items):
    """The first `SHOWN` of `items` joined by ", ", then "and N more" for the rest."""
    shown = ", ".join(str(item) for item in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def clause(error):
    """`str(error)` without its final period, to quote inside a sentence of ours.

    Messages quoted mid-sentence or before our own period would otherwise
    end in "..", as the package's own errors end in a period.
    """
    return str(error).rstrip().rstrip(".")


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
