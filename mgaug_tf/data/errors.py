"""Errors raised by the data readers.

Both derive from the built-in exception a caller would expect
(`FileNotFoundError`, `ValueError`), so `except ValueError` keeps working.
"""


class DataNotFoundError(FileNotFoundError):
    """The data directory, or the files a format needs inside it, are missing."""


class CorruptDataError(ValueError):
    """A file exists but cannot be read: truncated, corrupt or inconsistent."""
