"""Reading benchmark pickles, including ones written by Python 2.

Most few-shot benchmark pickles were written by Python 2, where `str` is
bytes: numpy arrays inside them only load with `encoding="latin1"`, and dict
keys come back as `bytes` or `str` depending on how they were loaded.
`load_pickle` hides both differences. `scan_png_blobs` finds PNG images stored
verbatim inside a pickle so they can be read through a memory map instead of
unpickling gigabytes.
"""

import array
import mmap
import pickle
import struct

import numpy as np

from mgaug_tf.data.errors import CorruptDataError, clause

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Pickle opcodes that store a byte string verbatim, with the size of their
# little-endian length prefix. Python 2 writes `str` (numpy data) as
# SHORT_BINSTRING / BINSTRING; Python 3 protocol >= 3 writes bytes as the rest.
_VERBATIM_OPCODES = {b"U": 1, b"C": 1, b"T": 4, b"B": 4, b"\x8e": 8, b"\x96": 8}


# The globals a dataset pickle may name: numpy array, dtype and scalar
# reconstruction (under numpy 1's `numpy.core` and numpy 2's `numpy._core`),
# Python 3's encoding of bytes in protocol 2, and builtin containers, under
# their Python 2 and Python 3 module names. Anything else could run code.
SAFE_GLOBALS = frozenset(
    [(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
     for name in ("_reconstruct", "scalar")]
    + [(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
       ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
       ("collections", "OrderedDict")]
    + [(module, name) for module in ("__builtin__", "builtins")
       for name in ("object", "set", "frozenset", "bytearray", "bytes", "slice", "complex")])


class UnsafePickleError(CorruptDataError):
    """A pickle that asks for a global a dataset pickle never needs (it could run code)."""


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds only what dataset pickles hold (`SAFE_GLOBALS`)."""

    def __init__(self, handle, path, encoding):
        super().__init__(handle, encoding=encoding)
        self._path = path

    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise UnsafePickleError(
                f"{self._path} asks to load the global {module}.{name}, which no dataset "
                "pickle needs (a pickle can run code when it is loaded); refused. Get the "
                "file again from a source you trust.")
        return super().find_class(module, name)


def _read(path, encoding):
    with open(path, "rb") as handle:
        return _DataUnpickler(handle, path, encoding).load()


def load_pickle(path):
    """Unpickles `path`, falling back to latin1 for Python 2 pickles.

    Args:
        path: A pickle file.

    Returns:
        The unpickled object, with `bytes` dict keys turned into `str`
        (recursively for nested dicts), so `obj["labels"]` works whichever
        Python wrote the file.

    Only numpy arrays, dtypes and scalars and builtin containers and scalars
    are built (`SAFE_GLOBALS`): unpickling can otherwise run any code a
    downloaded file asks for.

    Raises:
        UnsafePickleError: The pickle names any other global (refused before
            anything it names is called).
        CorruptDataError: The file is truncated or is not a pickle.

    Example:
        >>> labels = load_pickle("train_labels.pkl")["label_specific"]
    """
    try:
        try:
            obj = _read(path, "ASCII")
        except UnicodeDecodeError:
            # Python 2 `str` holding binary data (numpy arrays): latin1 maps
            # every byte to one code point, which numpy turns back into bytes.
            obj = _read(path, "latin1")
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, struct.error, MemoryError) as error:
        raise CorruptDataError(
            f"Cannot unpickle {path} ({_size(path)} bytes): {type(error).__name__}: "
            f"{clause(error)}. The file is truncated or corrupt, or is not a pickle; copy it "
            "again.") from None
    return str_keys(obj)


def str_keys(obj):
    """Returns `obj` with `bytes` keys and values of dicts decoded to `str`."""
    if isinstance(obj, dict):
        return {as_str(key): str_keys(value) for key, value in obj.items()}
    return as_str(obj)


def as_str(value):
    """Decodes `bytes` (Python 2 `str`) to `str`; other values pass through."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return value


def require_keys(obj, keys, path):
    """Raises `CorruptDataError` naming `path` unless dict `obj` has all `keys`."""
    if not isinstance(obj, dict):
        raise CorruptDataError(
            f"{path} holds a {type(obj).__name__}, expected a dict with keys {sorted(keys)}.")
    missing = [key for key in keys if key not in obj]
    if missing:
        raise CorruptDataError(
            f"{path} lacks the key(s) {missing}; it has {sorted(obj)[:10]}. "
            f"Expected a dict with keys {sorted(keys)}.")
    return obj


def scan_png_blobs(path):
    """Locates the PNG images stored verbatim in a pickle, without unpickling it.

    Each hit must be both a well-formed PNG (chunks up to `IEND`) and exactly
    the payload of a pickle byte-string opcode whose length prefix matches, so
    random bytes that happen to look like a PNG signature are never taken.

    Args:
        path: A pickle file, such as Ren et al.'s `train_images_png.pkl`.

    Returns:
        `(offsets, lengths)` int64 arrays: PNG `i` is
        `file[offsets[i]:offsets[i] + lengths[i]]`, in pickle order. Both are
        empty when the PNGs are not stored verbatim (for example a pickle
        re-written by Python 3 with protocol 2, which text-encodes bytes).

    Raises:
        CorruptDataError: The file is empty or does not end like a pickle
            (truncated).
    """
    offsets, lengths = array.array("q"), array.array("q")  # no int object per image
    with open(path, "rb") as handle:
        try:
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            raise CorruptDataError(f"{path} is empty; expected a pickle.") from None
        with view:
            size = len(view)
            if view[size - 1:size] != b".":  # every pickle ends with STOP
                raise CorruptDataError(
                    f"{path} ({size} bytes) does not end with the pickle STOP opcode: "
                    "the file is truncated; copy it again.")
            start = view.find(PNG_SIGNATURE)
            while start >= 0:
                length = _verbatim_png_length(view, start)
                if length is None:
                    return np.zeros(0, np.int64), np.zeros(0, np.int64)
                offsets.append(start)
                lengths.append(length)
                start = view.find(PNG_SIGNATURE, start + length)
    return np.frombuffer(offsets, np.int64), np.frombuffer(lengths, np.int64)


def _verbatim_png_length(view, start):
    """Length of the PNG at `start` if it is exactly one opcode's payload, else None."""
    for opcode, prefix in _VERBATIM_OPCODES.items():
        header = start - 1 - prefix
        if header < 0 or view[header:header + 1] != opcode:
            continue
        declared = int.from_bytes(view[header + 1:start], "little")
        # A declared length past the end means these bytes were no opcode.
        if start + declared <= len(view) and _png_end(view, start,
                                                      start + declared) == start + declared:
            return declared
    return None


def _png_end(view, start, limit):
    """Offset just past the `IEND` chunk of the PNG at `start`, or None before `limit`."""
    position = start + len(PNG_SIGNATURE)
    while position + 12 <= limit:
        (length,) = struct.unpack(">I", view[position:position + 4])
        chunk_type = view[position + 4:position + 8]
        position += 12 + length
        if chunk_type == b"IEND":
            return position
    return None


def _size(path):
    try:
        with open(path, "rb") as handle:
            return handle.seek(0, 2)
    except OSError:
        return "unknown"
