"""Messages a new user of `folder` and `arrays` meets: bad values, wrong files, flags by name."""

import contextlib
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from mgaug_tf import checks
from mgaug_tf import config as config_lib
from mgaug_tf.data import CorruptDataError, DataNotFoundError, OptionError, load, split as split_lib
from mgaug_tf.data import errors, sources
from mgaug_tf_cli import flags as run_flags
from mgaug_tf_cli import train

ARRAYS_RUN = ["--dataset=arrays", "--backbone=mlp", "--hidden_units=8", "--learner=maml",
              "--inner_steps=1", "--n_way=2", "--k_shot=1", "--k_query=1",
              "--meta_batch_size=1", "--train_steps=2", "--eval_every=2", "--val_episodes=2",
              "--eval_episodes=2", "--checkpoint_every=2", "--mode=train_and_eval"]


def _call(argv):
    """`mgaug-train` in this process: `(exit code, stderr)`."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            train.run_and_report(run_flags.parse_config(argv))
        except SystemExit as exit_info:
            code = exit_info.code
    return code, err.getvalue()


def _write_splits(root, x_train):
    """{train,val,test}.npz of 2 classes; train's x is `x_train` [N, ...] (N even)."""
    root.mkdir()
    y_train = np.repeat([0, 1], len(x_train) // 2)
    np.savez(root / "train.npz", x=x_train, y=y_train)
    for split in ("val", "test"):
        np.savez(root / f"{split}.npz", x=np.ones((4, 3), np.float32), y=[0, 0, 1, 1])
    return root


# ----------------------------------------------------------------- NaN and inf in x
def test_nan_and_inf_in_x_are_refused_naming_file_count_and_first_row(tmp_path):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    x[6, 2] = np.nan
    x[4, 0] = np.inf
    x[6, 0] = -np.inf
    data_dir = _write_splits(tmp_path / "arrays", x)
    with pytest.raises(CorruptDataError) as info:
        load("arrays", data_dir, "train")
    assert str(info.value) == (
        f"{data_dir / 'train.npz'}: x holds 3 non-finite values (NaN or inf), the first in row "
        "4; training on them gives NaN losses or meaningless accuracies. Remove or repair those "
        "rows.")
    x[4, 0] = x[6, 0] = 0.0
    np.savez(data_dir / "train.npz", x=x, y=np.repeat([0, 1], 5))
    with pytest.raises(CorruptDataError, match=r"x holds 1 non-finite value \(NaN or inf\), "
                                               r"the first in row 6;"):
        load("arrays", data_dir, "train")
    # In-memory examples follow the same rule.
    with pytest.raises(CorruptDataError, match=r"^examples holds 1 non-finite value"):
        split_lib.FewShotSplit.from_examples(x, np.repeat([0, 1], 5))


def test_the_finite_check_counts_across_chunks_and_skips_integers():
    x = np.zeros((50, 4), np.float64)
    x[[17, 17, 31, 49], [0, 3, 1, 2]] = [np.nan, np.inf, -np.inf, np.nan]
    for chunk_bytes in (1, 32, 7 * 32, 10**9):  # one row, 7 rows, all rows per chunk
        with pytest.raises(CorruptDataError, match=r"^x holds 4 non-finite values \(NaN or "
                                                   r"inf\), the first in row 17;"):
            split_lib.check_finite(x, "x", chunk_bytes=chunk_bytes)
    split_lib.check_finite(np.full((5, 2), np.iinfo(np.int64).max), "x", chunk_bytes=1)


def test_a_memory_mapped_x_is_scanned_in_chunks_without_a_full_copy(tmp_path, monkeypatch):
    x = np.ones((16384, 256), np.float32)  # 16 MiB; a full isfinite mask alone is 4 MiB
    x[-1, -1] = np.nan
    data_dir = _write_splits(tmp_path / "arrays", x)
    monkeypatch.setattr(split_lib, "FINITE_CHUNK_BYTES", 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptDataError, match="the first in row 16383;"):
            load("arrays", data_dir, "train")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes / 8, peak


# ----------------------------------------------------------------- files of the wrong kind
def test_a_file_that_is_not_an_npz_is_named_as_such(tmp_path):
    data_dir = _write_splits(tmp_path / "arrays", np.ones((4, 3), np.float32))
    (data_dir / "train.npz").write_text("garbage")
    with pytest.raises(CorruptDataError) as info:
        load("arrays", data_dir, "train")
    assert str(info.value) == (f"{data_dir / 'train.npz'} is not an .npz (zip) file; expected "
                               "one written by np.savez(path, x=x, y=y).")
    np.save(data_dir / "val.npy", np.ones((4, 3)))
    (data_dir / "val.npy").rename(data_dir / "val.npz")  # an .npy under an .npz name
    with pytest.raises(CorruptDataError, match=r"val\.npz is not an \.npz \(zip\) file"):
        load("arrays", data_dir, "val")


def test_a_quoted_message_ending_in_a_period_gets_no_second_one(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.ones((4, 3)))
    with pytest.raises(CorruptDataError) as info:
        load("arrays", tmp_path, "train")
    assert str(info.value) == (f"{tmp_path / 'train.npz'} has no array 'y' (it has ['x']); "
                               "expected x [N, ...] and y [N].")
    assert errors.clause(ValueError("Bad header.")) == "Bad header"
    assert errors.clause(ValueError("no period")) == "no period"


# ----------------------------------------------------------------- plurals
def test_counts_of_one_read_in_the_singular(tmp_path):
    for name, count in (("c0", 2), ("c1", 1), ("c2", 0)):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        for index in range(count):
            Image.new("L", (4, 4)).save(folder / f"{index}.png")
    (tmp_path / "train" / "c0" / "notes.txt").write_text("x")
    with pytest.raises(CorruptDataError) as info:
        load("folder", tmp_path, "train")
    assert str(info.value) == (
        f"folder {tmp_path}: 1 entry in class folders is not an image (.jpg, .jpeg, .png, .gif, "
        ".bmp, .webp): train/c0/notes.txt; 1 class folder has no images: 'c2'. Remove or move "
        "these (hidden files such as .DS_Store are ignored); nothing was read.")

    (tmp_path / "train" / "c0" / "notes.txt").unlink()
    (tmp_path / "train" / "c2").rmdir()
    split = load("folder", tmp_path, "train", channels=1)
    from mgaug_tf.data.episodes import eligible_classes  # pylint: disable=import-outside-toplevel
    with pytest.raises(ValueError) as info:
        eligible_classes(split, 2, 1, 1)
    assert str(info.value) == (
        "1 class of folder train has fewer than k_shot + k_query = 1 + 1 = 2 examples: 'c1' "
        "(1). Add examples to it, remove it from the split, or lower k_shot or k_query.")

    root = tmp_path / "flat"
    (root / "c0").mkdir(parents=True)
    (root / "splits.json").write_text('{"train": ["c0", "lost"]}')
    with pytest.raises(DataNotFoundError, match=r"names 1 class of the 'train' split that is not "
                                                r"a folder in"):
        load("folder", root, "train", split_file=root / "splits.json")
    np.savez(root / "data.npz", x=np.ones((2, 3)), y=["c0", "b"])
    with pytest.raises(CorruptDataError, match=r"names 1 class of the 'train' split that no "
                                               r"label of"):
        load("arrays", root, "train", split_file=root / "splits.json")


# ----------------------------------------------------------------- image signatures
def test_the_signature_check_accepts_and_names_the_five_encodings(tmp_path):
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        data = buffer.getvalue()
        assert sources.quick_image_problem(len(data), data[:sources.SIGNATURE_BYTES]) is None, fmt
    assert sources.quick_image_problem(7, b"garbage") == (
        "not a JPEG, PNG, GIF, BMP or WebP file (7 bytes starting 67 61 72 62)")
    assert sources.IMAGE_KINDS in config_lib.FIELDS_BY_FLAG["check_image_files"].doc


# ----------------------------------------------------------------- flags, not arguments
def test_dataset_options_are_named_as_library_arguments_and_attributes():
    with pytest.raises(OptionError) as info:
        load("sinusoid", "/tmp", "train")
    assert (info.value.dataset, info.value.arguments) == ("sinusoid", ("data_dir",))
    with pytest.raises(OptionError) as info:
        load("glyphs", None, "train", split_file="x", channels=1)
    assert info.value.arguments == ("channels", "split_file")
    assert "image_size" in info.value.accepted


@pytest.mark.parametrize("argv, message", [
    (["--dataset=sinusoid", "--data_dir=/tmp"],
     "--data_dir=/tmp: --dataset=sinusoid is generated and reads no files; leave --data_dir "
     "unset."),
    (["--dataset=sinusoid", "--channels=1", "--split_file=x"],
     "--channels=1 --split_file=x: --dataset=sinusoid does not take them (it takes none of "
     "--image_size, --channels, --split_file); leave them unset."),
    (["--dataset=glyphs", "--split_file=x"],
     "--split_file=x: --dataset=glyphs does not take it (it takes --image_size); leave it "
     "unset."),
])
def test_the_cli_names_the_flags_a_dataset_does_not_take(tmp_path, argv, message):
    code, err = _call([*argv, f"--model_dir={tmp_path / 'run'}", "--train_steps=1"])
    assert code == 2 and message in err, err
    assert "data_dir=None" not in err and "Unknown option" not in err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_channels_outside_1_and_3_are_refused_when_the_flags_are_parsed():
    experiment = run_flags.parse_config(["--dataset=folder", "--channels=2"])
    with pytest.raises(config_lib.ConfigFieldError) as info:
        checks.check_config(experiment)
    assert info.value.paths == ("data.channels",)
    assert run_flags.describe(info.value.paths, experiment) == "--channels=2"
    for channels in (1, 3):
        checks.check_config(run_flags.parse_config(["--dataset=folder", f"--channels={channels}"]))


def test_nan_in_arrays_stops_the_cli_before_training(tmp_path):
    x = np.ones((8, 3), np.float32)
    x[5, 1] = np.nan
    data_dir = _write_splits(tmp_path / "arrays", x)
    code, err = _call([f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}",
                       *ARRAYS_RUN])
    assert code == 2
    assert (f"{data_dir / 'train.npz'}: x holds 1 non-finite value (NaN or inf), the first in "
            "row 5;") in err
    assert "Traceback" not in err and "learning rate" not in err
    assert not (tmp_path / "run" / "checkpoint").exists()
