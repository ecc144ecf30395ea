"""Python-2-safe unpickling and the in-place PNG index of pickles."""

import pickle

import numpy as np
import pytest

from mgaug_tf.data import CorruptDataError
from mgaug_tf.data.pickles import UnsafePickleError, load_pickle, scan_png_blobs
from tests.data.writers import encode, random_images, write_python2_pickle


def test_python2_pickle_with_byte_keys_and_binary_arrays(tmp_path):
    array = np.arange(256, dtype=np.uint8).reshape(16, 16)  # not ASCII: needs latin1
    path = write_python2_pickle({b"data": array, b"names": [b"n01", b"n02"], b"n": 3},
                                tmp_path / "py2.pkl")
    with pytest.raises(UnicodeDecodeError):  # what a plain Python 3 load does
        with open(path, "rb") as handle:
            pickle.load(handle)
    loaded = load_pickle(path)
    assert sorted(loaded) == ["data", "n", "names"]
    np.testing.assert_array_equal(loaded["data"], array)
    assert loaded["names"] == ["n01", "n02"] and loaded["n"] == 3


def test_python3_pickle_with_str_keys(tmp_path):
    path = tmp_path / "py3.pkl"
    path.write_bytes(pickle.dumps({"labels": [3, 1], b"raw": {b"inner": 1}}, protocol=4))
    assert load_pickle(path) == {"labels": [3, 1], "raw": {"inner": 1}}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_pickle_names_the_file(tmp_path, damage):
    path = write_python2_pickle({b"labels": list(range(1000))}, tmp_path / "labels.pkl")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"not a pickle at all",
                      "empty": b""}[damage])
    with pytest.raises(CorruptDataError, match="labels.pkl"):
        load_pickle(path)


@pytest.mark.parametrize("writer", ["python2", "protocol4"])
def test_scan_finds_every_png_exactly(tmp_path, writer):
    pngs = [encode(image) for image in random_images(7, 20, seed=1)]
    arrays = [np.frombuffer(png, np.uint8).reshape(-1, 1) for png in pngs]
    path = tmp_path / "images.pkl"
    if writer == "python2":
        write_python2_pickle(arrays, path)
    else:
        path.write_bytes(pickle.dumps(arrays, protocol=4))
    offsets, lengths = scan_png_blobs(path)
    data = path.read_bytes()
    assert [data[o:o + n] for o, n in zip(offsets, lengths)] == pngs


def test_scan_gives_up_on_text_encoded_bytes(tmp_path):
    # Python 3 protocol 2 stores bytes as latin1 text: not readable in place.
    arrays = [np.frombuffer(encode(image), np.uint8) for image in random_images(40, 20)]
    path = tmp_path / "images.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    offsets, lengths = scan_png_blobs(path)
    assert len(offsets) == 0 and len(lengths) == 0


def test_scan_ignores_signatures_behind_bogus_length_prefixes(tmp_path):
    # Looks like a BINSTRING opcode announcing 2 GiB before a PNG signature.
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"\x80\x02T" + (2**31 - 1).to_bytes(4, "little") + encode(
        random_images(1, 8)[0]) + b".")
    offsets, lengths = scan_png_blobs(path)
    assert len(offsets) == 0 and len(lengths) == 0


def test_scan_of_truncated_pickle_names_the_file(tmp_path):
    arrays = [np.frombuffer(encode(image), np.uint8) for image in random_images(3, 20)]
    path = write_python2_pickle(arrays, tmp_path / "train_images_png.pkl")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CorruptDataError, match="train_images_png.pkl.*truncated"):
        scan_png_blobs(path)


class _RunsCode:
    """Unpickles as `os.system(command)`: what a malicious dataset file could hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os  # pylint: disable=import-outside-toplevel
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "train_labels.pkl"
    path.write_bytes(pickle.dumps({"labels": [1, 2], "x": _RunsCode(f"touch {marker}")},
                                  protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"train_labels.pkl asks to load the global "
                                                r"(posix|os)\.system"):
        load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj", [
    {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": {1, 2}, "f": frozenset([3]),
     "t": (np.int64(4), np.float16(0.5), b"raw", bytearray(b"ba"), 1 + 2j, None)},
    [np.zeros((2, 2), np.uint8), np.array(["a", "b"]), np.dtype("float64")],
])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_builtin_and_numpy_value_still_loads(tmp_path, obj, protocol):
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    loaded = load_pickle(path)
    assert pickle.dumps(loaded, protocol=4) == pickle.dumps(obj, protocol=4)
