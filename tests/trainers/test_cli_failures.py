"""What a new user hits, through `trainers/run.py`: corrupt images (pre-flight and mid-run,
the process always exits), a second run in one model_dir, export folders, --help, includes."""

import json
import os
import socket
import subprocess

import numpy as np
import tensorflow as tf

from mgaug_tf import data
from mgaug_tf.data import episodes
from mgaug_tf.training import files
from mgaug_tf_cli import flags as run_flags
from tests.data.writers import encode, random_images, write_python2_pickle, write_ravi_mini
from tests.trainers.conftest import GLYPHS, REPO, RUN, Cli, checkpoint_tensors, cli_env

# A data error must end the process quickly (it used to hang after printing).
EXIT_BOUND_S = 150
TINY = ["--image_size=16", "--filters=4", "--n_way=3", "--k_shot=1", "--k_query=2",
        "--meta_batch_size=2", "--inner_steps=1", "--val_episodes=2", "--eval_episodes=2",
        "--summary_every=1", "--mode=train"]


def _ravi(root, images_per_class=10):
    """A Ravi-layout miniImageNet (4 classes per split, 20 px JPEGs); {split: [paths by item]}."""
    items = {}
    for index, split in enumerate(("train", "val", "test")):
        classes = {f"n{index}{c:07d}": random_images(images_per_class, 20, seed=10 * index + c)
                   for c in range(4)}
        paths = write_ravi_mini(root, split, classes)
        items[split] = [path for name in sorted(paths) for path in paths[name]]
    return items


def _truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 3])


def _first_steps(root, steps):
    """{train item: first meta-step drawing it} for the runs below (seed 0, B = 2)."""
    split = data.load("miniimagenet", root, "train", image_size=16)
    sample = episodes.make_episode_sampler(split, 3, 1, 2, 0)
    first = {}
    for episode in range(2 * steps):
        for item in np.asarray(sample(tf.constant(episode, tf.int64))[0]):
            first.setdefault(int(item), episode // 2)
    return first


def _user_env():
    """The environment of a user who has not set TF_CPP_MIN_LOG_LEVEL."""
    env = cli_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _run(tmp_path, name, data_dir, *args, dataset="miniimagenet"):
    return Cli(RUN, [f"--dataset={dataset}", f"--data_dir={data_dir}", *TINY,
                     f"--model_dir={tmp_path / name}", *args], tmp_path, name, env=_user_env())


def _main_succeeds(*args):
    """Runs `mgaug-train`'s config in this process; it must end without an error."""
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel
    train.run(run_flags.parse_config(args))


def _finished(cli):
    code = cli.wait(timeout=EXIT_BOUND_S)  # raises (and kills) past the bound
    return code, cli.stderr


def test_corrupt_images_before_and_during_training(tmp_path):
    # Pre-flight: zero-byte, garbage and truncated JPEGs in the Ravi layout.
    bad = tmp_path / "bad"
    items = _ravi(bad)
    empty, garbage, truncated, val_garbage = (items["train"][1], items["train"][12],
                                              items["train"][25], items["val"][3])
    empty.write_bytes(b"")
    garbage.write_bytes(os.urandom(2000))
    _truncate(truncated)
    val_garbage.write_bytes(b"<html>not found</html>")

    # Mid-run: a truncated image (passes the quick check) met at the first
    # step, and a zero-byte image met later with the quick check off.
    early_root, late_root = tmp_path / "early", tmp_path / "late"
    early, late = _ravi(early_root), _ravi(late_root)
    first = _first_steps(early_root, 8)
    early_item = min(first, key=first.get)
    late_item = next(item for item, step in sorted(first.items(), key=lambda pair: pair[1])
                     if step >= 3)
    _truncate(early["train"][early_item])
    late["train"][late_item].write_bytes(b"")

    runs = {
        "quick": _run(tmp_path, "quick", bad, "--train_steps=2"),
        "verify": _run(tmp_path, "verify", bad, "--train_steps=2", "--verify_images"),
        "first_step": _run(tmp_path, "first_step", early_root, "--train_steps=2"),
        "later": _run(tmp_path, "later", late_root, "--train_steps=8", "--checkpoint_every=1",
                      "--eval_every=100", "--nocheck_image_files"),
    }
    try:
        results = {name: _finished(cli) for name, cli in runs.items()}
    finally:
        for cli in runs.values():
            cli.kill()
    for name, (code, stderr) in results.items():
        assert code == 2, f"{name}: exit {code}\n{stderr}"
        assert "Traceback" not in stderr and "InvalidArgumentError" not in stderr, name

    # The quick default check lists every empty and non-image file of the
    # chosen splits (train and val), before any work; truncated ones need
    # decoding, which --verify_images does.
    code, stderr = results["quick"]
    assert "3 image(s) of the chosen splits cannot be read" in stderr
    assert f"{empty}: empty (0 bytes)" in stderr
    not_an_image = "not a JPEG, PNG, GIF, BMP or WebP file"
    assert f"{garbage}: {not_an_image}" in stderr and f"{val_garbage}: {not_an_image}" in stderr
    assert str(truncated) not in stderr
    code, stderr = results["verify"]
    assert "4 image(s) of the chosen splits cannot be read (decoded)" in stderr
    for path in (empty, garbage, truncated, val_garbage):
        assert f"Cannot decode image {path}" in stderr, path
    for name in ("quick", "verify"):
        assert not (tmp_path / name).exists()  # nothing written

    code, stderr = results["first_step"]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [line for line in lines if line.startswith("run.py: error: ")]
    assert f"Cannot decode image {early['train'][early_item]} " in stderr
    assert "No checkpoint had been written yet" in stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "first_step")) is None

    code, stderr = results["later"]
    assert f"Cannot decode image {late['train'][late_item]}: it is empty (0 bytes)" in stderr
    latest = tf.train.latest_checkpoint(str(tmp_path / "later"))
    assert latest is not None and f"The last checkpoint, {latest}, is intact" in stderr
    assert int(latest.rsplit("-", 1)[1]) == first[late_item]  # saved up to the failing step
    for name, value in checkpoint_tensors(latest).items():
        assert np.isfinite(value.astype(np.float64)).all(), name
    assert not (tmp_path / "later" / files.LOCK_FILE).exists()


def _ren_pickles(root, bad):
    """Ren et al. tieredImageNet pickles (4 classes x 6 PNGs); `bad`: {item: blob bytes}."""
    root.mkdir()
    images = random_images(24, 20, seed=3)
    blobs = [np.frombuffer(bad.get(index, encode(image)), np.uint8).reshape(-1, 1)
             for index, image in enumerate(images)]
    labels = np.repeat(np.arange(4), 6)
    for split in ("train", "val", "test"):
        write_python2_pickle(blobs if split == "train" else
                             [np.frombuffer(encode(image), np.uint8) for image in images],
                             root / f"{split}_images_png.pkl")
        write_python2_pickle({b"label_specific": labels, b"label_general": labels * 0,
                              b"label_specific_str": [b"c%d" % c for c in range(4)],
                              b"label_general_str": [b"g0"]}, root / f"{split}_labels.pkl")


def test_corrupt_images_inside_a_tiered_pickle_are_listed(tmp_path):
    png = encode(random_images(1, 20, seed=9)[0])
    _ren_pickles(tmp_path / "tiered", {2: b"", 7: b"\x00garbage" * 50, 13: png[:len(png) // 2]})
    cli = _run(tmp_path, "tiered_run", tmp_path / "tiered", "--train_steps=2", "--verify_images",
               dataset="tieredimagenet")
    code, stderr = _finished(cli)
    assert code == 2 and "Traceback" not in stderr
    pickle_path = tmp_path / "tiered" / "train_images_png.pkl"
    assert "3 image(s) of the chosen splits cannot be read (decoded)" in stderr
    for item in (2, 7, 13):
        assert f"Cannot decode image image #{item} of {pickle_path}" in stderr, item


def test_second_live_run_in_a_model_dir_is_refused_and_stale_locks_are_taken_over(
        run_main, tmp_path):
    model_dir = tmp_path / "model"
    lock = files.RunLock(str(model_dir)).acquire()  # this test process is the live run
    try:
        code, stderr, _ = run_main(*GLYPHS, "--train_steps=1", model_dir=model_dir)
    finally:
        lock.release()
    assert code == 2
    assert f"another run is using it (pid {os.getpid()} on " in stderr
    assert sorted(path.name for path in model_dir.iterdir()) == []  # nothing written

    # A lock left by a run killed with SIGKILL (its pid is gone) is stale.
    finished = subprocess.Popen(["true"])
    finished.wait()
    (model_dir / files.LOCK_FILE).write_text(json.dumps(
        {"pid": finished.pid, "host": socket.gethostname(), "started": "earlier"}))
    _main_succeeds(f"--model_dir={model_dir}", *GLYPHS, "--train_steps=1",
                   "--checkpoint_every=1", "--eval_every=1", "--val_episodes=1", "--mode=train")
    assert tf.train.latest_checkpoint(str(model_dir)) is not None
    assert not (model_dir / files.LOCK_FILE).exists()  # released at the end


def test_export_dir_must_be_empty_or_overwritten_and_never_the_model_dirs_own(
        run_main, reference_run, tmp_path):
    flagfile = f"--flagfile={reference_run / 'flags.cfg'}"
    before = sorted(path.name for path in reference_run.iterdir())
    for export_dir in (reference_run, reference_run / "train", reference_run.parent):
        code, stderr, _ = run_main(flagfile, "--mode=export", f"--export_dir={export_dir}",
                                   "--overwrite_export", model_dir=reference_run)
        assert code == 2 and "would write the SavedModel over the files of" in stderr, export_dir
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    code, stderr, _ = run_main(flagfile, "--mode=export", f"--export_dir={occupied}",
                               model_dir=reference_run)
    assert code == 2 and f"--export_dir={occupied} is not empty" in stderr
    assert (occupied / "notes.txt").exists()
    assert sorted(path.name for path in reference_run.iterdir()) == before

    _main_succeeds(f"--model_dir={reference_run}", flagfile, "--mode=export",
                   f"--export_dir={occupied}", "--overwrite_export")
    assert not (occupied / "notes.txt").exists() and (occupied / "saved_model.pb").exists()


def test_help_lists_the_flags_grouped_as_the_docs_without_tensorflow_noise(tmp_path):
    runs = {name: Cli(RUN, [argument], tmp_path, name, env=_user_env())
            for name, argument in (("help", "--help"), ("helpshort", "--helpshort"))}
    # Run from another folder: a config's includes are found beside it.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    runs["outside"] = Cli(RUN, [f"--flagfile={REPO / 'configs' / 'mini_maml_mgaug.cfg'}",
                                f"--model_dir={tmp_path / 'outside_run'}",
                                f"--data_dir={tmp_path / 'no_data'}"], tmp_path, "outside",
                          cwd=outside, env=_user_env())
    codes = {name: cli.wait(timeout=EXIT_BOUND_S) for name, cli in runs.items()}
    docs = (REPO / "docs" / "cli.md").read_text()
    groups = ["data", "episodes", "model: backbone", "model: learner", "MGAug", "optimizer",
              "trainer", "runtime"]  # the sections of mgaug_tf.config.ExperimentConfig
    order = [docs.index(f"* **{group}**") for group in groups]
    assert order == sorted(order)
    for name in ("help", "helpshort"):
        assert codes[name] == 0, runs[name].stderr
        text = runs[name].stdout
        headers = [line[:-1] for line in text.splitlines() if line[:-1] in groups]
        assert headers == groups
        for flag in ("--dataset", "--learner", "--mgaug", "--outer_lr", "--eval_every",
                     "--model_dir", "--verify_images", "--overwrite_export"):
            assert f"\n  {flag}:" in text or f"\n  --[no]{flag[2:]}:" in text, flag
        assert runs[name].stderr.strip() == ""  # no oneDNN, CPU-feature or cuInit lines
    assert codes["outside"] == 2
    assert f"--data_dir={tmp_path / 'no_data'}: data_dir" in runs["outside"].stderr
    assert "cuInit" not in runs["outside"].stderr and "oneDNN" not in runs["outside"].stderr


def test_a_dataset_pickle_that_would_run_code_stops_the_cli_in_one_line(run_main, tmp_path):
    """A miniImageNet cache whose load would call os.system is refused; the command never runs."""
    import pickle  # pylint: disable=import-outside-toplevel

    class RunsCode:  # pylint: disable=too-few-public-methods
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    rows = {"n01": [0, 1, 2], "n02": [3, 4, 5], "n03": [6, 7, 8]}
    for split in ("train", "val", "test"):
        (tmp_path / f"mini-imagenet-cache-{split}.pkl").write_bytes(pickle.dumps(
            {"image_data": random_images(9, 20), "class_dict": rows, "x": RunsCode()},
            protocol=2))
    code, stderr, model_dir = run_main(*GLYPHS, "--dataset=miniimagenet",
                                       f"--data_dir={tmp_path}", "--k_query=1")
    assert code == 2 and "Traceback" not in stderr
    assert "mini-imagenet-cache-train.pkl asks to load the global posix.system" in stderr
    assert not (tmp_path / "pwned").exists() and not model_dir.exists()
