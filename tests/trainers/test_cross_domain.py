"""Cross-domain testing: --test_dataset evaluates a run on another dataset's test split.

The evaluated episodes are rebuilt from the experiment `mgaug-train` prepares
(its `EpisodeSpec`, the evaluator's input) and their pixels compared with an
independent conversion of the files: Pillow's two bilinear passes (width,
then height: `sources.resize_image`'s documented rule) and the ITU-R 601-2
luma in integers, `(19595 R + 38470 G + 7471 B + 32768) >> 16`.
"""

import json

import numpy as np
import pytest
from PIL import Image

from mgaug_tf import data
from mgaug_tf.data import episodes, preprocess
from mgaug_tf.data.convert import convert_image_channels, with_channels
from mgaug_tf.training import inputs
from mgaug_tf_cli import flags as run_flags
from mgaug_tf_cli import report, train
from tests.data.writers import write_ravi_mini
from tests.trainers.conftest import RUN, call_train, run_cli

EPISODES = 3
PROTONET = ["--learner=protonet", "--n_way=3", "--k_shot=1", "--k_query=2",
            "--meta_batch_size=2", "--train_steps=2", "--eval_every=2", "--val_episodes=2",
            f"--eval_episodes={EPISODES}", "--checkpoint_every=2", "--eval_seed=3"]
GLYPH_RUN = ["--dataset=glyphs", "--image_size=16", "--filters=4", *PROTONET]


def _luma(rgb):
    """uint8 `[..., 3]` -> uint8 `[..., 1]`: ITU-R 601-2 luma in Pillow's fixed point."""
    rgb = rgb.astype(np.int64)
    return ((19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + 32768)
            >> 16).astype(np.uint8)[..., None]


def _pil_resize(pil, size):
    """Pillow's bilinear resize, width first, then height (the readers' rule)."""
    if pil.width != size:
        pil = pil.resize((size, pil.height), Image.Resampling.BILINEAR)
    if pil.height != size:
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return pil


def _grey_from_file(path, size):
    """A JPEG as a `size` px grey image: decoded RGB, resized, then luma (independently)."""
    with Image.open(path) as pil:
        return _luma(np.asarray(_pil_resize(pil.convert("RGB"), size)))


def _evaluated_episodes(argv, count=EPISODES):
    """The first `count` evaluation episodes of `argv`'s --mode=eval, as the evaluator reads them.

    Returns:
        `(experiment, [(support, query, support_labels, query_labels)])`, images float32.
    """
    train.load_libraries()
    experiment = train.prepare(run_flags.parse_config(argv))
    spec = experiment.spec("eval_split", experiment.config.trainer.eval_seed)
    batches = inputs.meta_batches(spec, 1, training=False, num_steps=count)
    found = []
    for ((support, support_labels, query), query_labels), _ in zip(batches, range(count)):
        found.append((support[0].numpy(), query[0].numpy(), support_labels[0].numpy(),
                      query_labels[0].numpy()))
    return experiment, found


def _check_against_files(found, expected_by_pixels):
    """Every episode image is exactly one file's independent conversion, classes consistent."""
    checked = 0
    for support, query, support_labels, query_labels in found:
        classes = {}
        for images, labels in ((support, support_labels), (query, query_labels)):
            for image, label in zip(images, labels):
                pixels = np.round(image * 255)
                np.testing.assert_array_equal(pixels, image * 255)  # x / 255, no resampling
                name = expected_by_pixels[pixels.astype(np.uint8).tobytes()]  # KeyError: no file
                assert classes.setdefault(int(label), name) == name
                checked += 1
        assert len(set(classes.values())) == len(classes)  # n_way distinct classes
    return checked


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """A miniImageNet-layout test split of 40 px RGB JPEGs: 4 classes of 5 images."""
    root = tmp_path_factory.mktemp("rgb_test")
    rng = np.random.default_rng(7)
    # Smooth colour fields (random corners, bilinear) survive JPEG; their three channels differ,
    # so the luma is none of them.
    corners = rng.integers(0, 256, (4, 5, 2, 2, 3)).astype(np.uint8)
    classes = {f"n{index:08d}": [np.asarray(Image.fromarray(corner).resize((40, 40)))
                                 for corner in images] for index, images in enumerate(corners)}
    paths = write_ravi_mini(root, "test", classes)
    return root, paths


@pytest.fixture(scope="module")
def glyph_run(tmp_path_factory, rgb_folder):
    """A glyph run (16 px grey) trained with --test_dataset: `(model_dir, flags, stdout)`."""
    root, _ = rgb_folder
    model_dir = tmp_path_factory.mktemp("glyph_run") / "model"
    argv = [f"--model_dir={model_dir}", *GLYPH_RUN]
    code, out, err = call_train(argv + ["--mode=train_and_eval", "--test_dataset=mini",
                                   f"--test_data_dir={root}"])
    assert code == 0, err
    return model_dir, argv, out


def test_glyph_run_tested_on_rgb_jpegs_converted_to_its_grey_16_px(glyph_run, rgb_folder):
    model_dir, argv, out = glyph_run
    root, paths = rgb_folder
    # Trained and validated on glyphs; the final evaluation on the JPEGs only.
    assert "validation val:" in out and "miniimagenet test: " in out
    assert ("Cross-domain test: miniimagenet test (--test_dataset, --test_data_dir="
            f"{root}), trained on glyphs: 84x84x3 images -> 16x16x1 (resized by miniimagenet's "
            "reader at image_size=16; channels RGB -> grey (Pillow's ITU-R 601-2 luma)).") in out
    assert f"Results: {model_dir / 'eval_test_miniimagenet.json'}" in out
    assert sorted(path.name for path in model_dir.glob("eval_*.json")) == [
        "eval_test_miniimagenet.json"]
    assert (model_dir / "export" / "saved_model.pb").is_file()  # the training export, as ever
    result = json.loads((model_dir / "eval_test_miniimagenet.json").read_text())
    assert result["dataset"] == "miniimagenet" and result["split"] == "test"
    assert result["num_episodes"] == EPISODES and result["config"]["test_dataset"] == "mini"
    assert result["cross_domain"] == {
        "train_dataset": "glyphs", "test_dataset": "miniimagenet", "test_data_dir": str(root),
        "split": "test", "native": {"size": 84, "channels": 3},
        "converted": {"size": [16, 16], "channels": 1},
        "resize": "miniimagenet's reader at image_size=16",
        "channel_conversion": "RGB -> grey (Pillow's ITU-R 601-2 luma)",
        "channel_rule": "pillow_convert"}

    # mgaug-report shows it: the only evaluation by default, or by --split=test_<dataset>.
    assert report.find_evaluation_json(str(model_dir)) == str(
        model_dir / "eval_test_miniimagenet.json")
    row = report.markdown_table([report.load_run(str(model_dir), "test_miniimagenet")])
    assert "| model | glyphs → miniimagenet (16x16x1) | 3-way 1-shot | protonet |" in row

    # The in-domain evaluation writes its own file; a cross-domain one leaves it alone
    # and repeats its own numbers.
    code, out, err = call_train([*argv, "--mode=eval", "--test_dataset="])
    assert code == 0, err
    assert "Cross-domain" not in out and f"Results: {model_dir / 'eval_test.json'}" in out
    in_domain = (model_dir / "eval_test.json").read_bytes()
    assert json.loads(in_domain)["dataset"] == "glyphs"
    assert "cross_domain" not in json.loads(in_domain)
    cross = [*argv, "--mode=eval", "--test_dataset=miniimagenet", f"--test_data_dir={root}"]
    code, out, err = call_train(cross)
    assert code == 0, err
    assert (model_dir / "eval_test.json").read_bytes() == in_domain
    again = json.loads((model_dir / "eval_test_miniimagenet.json").read_text())
    assert again["per_episode_accuracy"] == result["per_episode_accuracy"]

    experiment, found = _evaluated_episodes(cross)
    assert experiment.splits["eval_split"].image_shape == (16, 16, 1)
    assert experiment.splits["train_split"].dataset == "glyphs"
    expected = {_grey_from_file(path, 16).tobytes(): wnid
                for wnid, files in paths.items() for path in files}
    assert len(expected) == 20  # every file converts to its own pixels
    assert _check_against_files(found, expected) == EPISODES * 3 * (1 + 2)


def test_channel_conversion_is_pillows_rule_both_ways():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 5, 4, 3)).astype(np.uint8)
    np.testing.assert_array_equal(convert_image_channels(rgb, 1), _luma(rgb))
    grey = rng.integers(0, 256, (3, 5, 4, 1)).astype(np.uint8)
    np.testing.assert_array_equal(convert_image_channels(grey, 3), np.repeat(grey, 3, -1))
    assert convert_image_channels(grey, 1) is grey
    points = data.FewShotSplit.from_examples(np.zeros((4, 3)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"converts images; arrays train holds examples of "
                                         r"shape \(3,\)"):
        with_channels(points, 1)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        convert_image_channels(grey, 2)
    split = data.load("glyphs", split="test", image_size=12)
    assert with_channels(split, 1) is split
    rgb_split = with_channels(split, 3)
    assert rgb_split.image_shape == (12, 12, 3) and rgb_split.class_names == split.class_names
    np.testing.assert_array_equal(rgb_split.images(4), np.repeat(split.images(4), 3, -1))
    assert rgb_split.preprocessing["convert_channels"] == {"from": 1, "to": 3,
                                                           "rule": "pillow_convert"}


@pytest.mark.parametrize("extra,message", [
    (["--test_dataset=nope"], "--test_dataset=nope: Unknown dataset 'nope'; available: "),
    (["--test_dataset=sinusoid"], "--test_dataset=sinusoid: cross-domain testing reads the "
                                  "test images at the training image size, and sinusoid holds "
                                  "no images."),
    (["--test_dataset=miniimagenet"], "--test_dataset=miniimagenet needs --test_data_dir, "
                                      "the folder holding its files"),
    (["--test_dataset=glyphs", "--test_data_dir=/tmp"], "--test_data_dir=/tmp: "
     "--test_dataset=glyphs is generated and reads no files; leave --test_data_dir unset."),
    (["--test_data_dir=/tmp"], "--test_data_dir=/tmp is given without --test_dataset"),
    (["--test_dataset=miniimagenet", "--test_data_dir={missing}"],
     "--test_data_dir={missing}: data_dir {missing} does not exist or is not a folder."),
    (["--test_dataset=miniimagenet", "--test_data_dir={root}", "--eval_k_query=5"],
     "--k_shot + --eval_k_query = 1 + 5 = 6 images per class, but only 0 classes of "
     "miniimagenet test (--test_dataset=miniimagenet --eval_split=test) have that many"),
    (["--test_dataset=miniimagenet", "--test_data_dir={root}", "--n_way=5"],
     "--n_way=5 is more than the 4 classes of miniimagenet test (--test_dataset=miniimagenet "
     "--eval_split=test)."),
    (["--test_split_file=/tmp/s.json"], "--test_split_file=/tmp/s.json is given without "
     "--test_dataset, the dataset it belongs to (--mode=eval takes them from the run's "
     "config.json: --test_dataset= --test_data_dir= --test_split_file= empties them)."),
    (["--test_data_dir=/tmp", "--test_split_file=/tmp/s.json"], "--test_data_dir=/tmp "
     "--test_split_file=/tmp/s.json are given without --test_dataset, the dataset they belong"),
    (["--test_dataset=glyphs", "--test_split_file=/tmp/s.json"], "--test_split_file=/tmp/s.json:"
     " --test_dataset=glyphs takes no split file (its splits are its own); leave "
     "--test_split_file unset (--mode=eval takes them from the run's config.json: "
     "--test_dataset= --test_data_dir= --test_split_file= empties them)."),
    (["--test_dataset=miniimagenet", "--test_data_dir={root}", "--test_split_file=/tmp/s.json"],
     "--test_split_file=/tmp/s.json: --test_dataset=miniimagenet takes no split file"),
    (["--test_dataset=tfds:omniglot", "--test_split_file=/tmp/s.json"],
     "--test_split_file=/tmp/s.json: --test_dataset=tfds:omniglot takes no split file"),
    (["--test_dataset=folder", "--test_data_dir={classes}", "--test_split_file={missing}"],
     "--test_data_dir={classes} --test_split_file={missing}: split_file {missing} does not "
     "exist."),
], ids=["unknown", "no_images", "no_dir", "dir_for_glyphs", "dir_alone", "missing_dir",
        "few_images", "few_classes", "split_file_alone", "dir_and_split_file_alone",
        "split_file_for_glyphs", "split_file_for_mini", "split_file_for_tfds",
        "missing_split_file"])
def test_bad_test_settings_stop_before_any_work(run_main, tmp_path, rgb_folder, class_folders,
                                                extra, message):
    root, _ = rgb_folder
    values = {"root": root, "missing": tmp_path / "nowhere", "classes": class_folders[0]}
    extra = [arg.format(**values) for arg in extra]
    code, err, model_dir = run_main(*GLYPH_RUN, "--mode=train_and_eval", *extra)
    assert code == 2
    assert message.format(**values) in err
    assert err.strip().count("\n") == 0  # one line, no traceback
    assert not model_dir.exists() or not any(model_dir.glob("ckpt-*"))  # nothing trained


# ------------------------------------------------- a folder of classes with a split file
SPLITS = {"train": ["ant", "bee", "cat"], "val": ["dog"], "test": ["eel", "fox", "gnu"]}


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """`root/<class>/` of 24 px RGB PNGs (3 each) and a JSON split file: `(root, split_file)`."""
    base = tmp_path_factory.mktemp("class_folders")
    root = base / "clean"
    rng = np.random.default_rng(11)
    for names in SPLITS.values():
        for name in names:
            (root / name).mkdir(parents=True)
            for index in range(3):
                # Smooth colour fields: every file's 16 px grey conversion is its own.
                corners = rng.integers(0, 256, (2, 2, 3)).astype(np.uint8)
                Image.fromarray(corners).resize((24, 24)).save(root / name / f"{index}.png")
    split_file = base / "split.json"
    split_file.write_text(json.dumps(SPLITS))
    return root, split_file


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, class_folders):
    """A glyph run (16 px grey) trained 2 steps with the folder as its test flags.

    Returns `(model_dir, flags)`: config.json holds --test_dataset=folder,
    --test_data_dir and --test_split_file, which --mode=eval takes.
    """
    root, split_file = class_folders
    model_dir = tmp_path_factory.mktemp("folder_run") / "model"
    argv = [f"--model_dir={model_dir}", *GLYPH_RUN]
    code, _, err = call_train(argv + ["--mode=train", "--test_dataset=folder",
                                 f"--test_data_dir={root}", f"--test_split_file={split_file}"])
    assert code == 0, err
    return model_dir, argv


def test_glyph_run_tested_on_the_split_files_test_classes_of_a_folder(folder_run,
                                                                      class_folders):
    model_dir, argv = folder_run
    root, split_file = class_folders
    config = json.loads((model_dir / "config.json").read_text())["data"]
    assert (config["test_split_file"], config["split_file"]) == (str(split_file), None)
    cross = [*argv, "--mode=eval", "--test_dataset=folder", f"--test_data_dir={root}",
             f"--test_split_file={split_file}"]
    code, out, err = call_train(cross)
    assert code == 0, err
    assert "trained on glyphs: any-size x3 images -> 16x16x1" in out
    assert sorted(path.name for path in model_dir.glob("eval_*.json")) == [
        "eval_test_folder.json"]
    result = json.loads((model_dir / "eval_test_folder.json").read_text())
    assert result["dataset"] == "folder" and result["num_episodes"] == EPISODES
    assert result["config"]["test_split_file"] == str(split_file)

    # The evaluated episodes hold the files of the split file's test classes, and only those.
    experiment, found = _evaluated_episodes(cross)
    assert list(experiment.splits["eval_split"].class_names) == SPLITS["test"]
    expected = {_grey_from_file(path, 16).tobytes(): path.parent.name
                for path in root.glob("*/*.png")}
    assert len(expected) == 7 * 3  # every file of every class converts to its own pixels
    assert _check_against_files(found, expected) == EPISODES * 3 * (1 + 2)
    seen = {expected[np.round(image * 255).astype(np.uint8).tobytes()]
            for support, query, _, _ in found for image in np.concatenate([support, query])}
    assert seen == set(SPLITS["test"])


@pytest.mark.parametrize("extra,message", [
    # --split_file belongs to the training data, fixed with the checkpoints.
    (["--test_dataset=folder", "--test_data_dir={root}", "--split_file={split_file}"],
     "--model_dir={model_dir} holds checkpoints of a run with other fixed flags (the model and "
     "its training data): (unset) --split_file there, --split_file={split_file} now "
     "(data.split_file). Resume with that run's flags ({model_dir}/flags.cfg) or use a new "
     "--model_dir; a --test_dataset's split file is --test_split_file."),
    # The trial's other attempt: the folder's classes without their split file.
    (["--test_dataset=folder", "--test_data_dir={root}", "--test_split_file="],
     "--test_data_dir={root}: {root} has no test/ folder for the 'test' split; its folders ("),
], ids=["split_file", "no_split_file"])
def test_eval_of_a_folder_run_refuses_mixed_up_split_files(folder_run, class_folders, extra,
                                                           message):
    model_dir, argv = folder_run
    root, split_file = class_folders
    values = {"root": root, "split_file": split_file, "model_dir": model_dir}
    before = sorted(path.name for path in model_dir.iterdir())
    code, out, err = call_train([*argv, "--mode=eval", *[arg.format(**values) for arg in extra]])
    assert code == 2
    assert message.format(**values) in err
    if extra[-1] == "--test_split_file=":
        assert err.strip().endswith("(docs/data.md). Give it as --test_split_file.")
    assert err.strip().count("\n") == 0 and "Results:" not in out
    assert sorted(path.name for path in model_dir.iterdir()) == before


def test_the_test_datasets_images_are_checked_even_under_the_training_splits_names(
        run_main, tmp_path):
    """Trained on one copy's train split, tested on another copy's: both are checked."""
    rng = np.random.default_rng(1)
    for copy in ("train_copy", "test_copy"):
        for split in ("train", "val"):
            write_ravi_mini(tmp_path / copy, split, {
                f"n{split}{index}": [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)] * 3
                for index in range(3)})
    empty = sorted((tmp_path / "test_copy" / "images").glob("ntrain1*.jpg"))[0]
    empty.write_bytes(b"")
    code, err, model_dir = run_main(
        "--dataset=miniimagenet", f"--data_dir={tmp_path / 'train_copy'}", "--image_size=16",
        "--filters=4", *PROTONET, "--eval_split=train", "--test_dataset=miniimagenet",
        f"--test_data_dir={tmp_path / 'test_copy'}")
    assert code == 2
    assert "1 image(s) of the chosen splits cannot be read" in err
    assert f"{empty}: empty (0 bytes)" in err
    assert not any(model_dir.glob("ckpt-*"))


def test_a_run_on_points_is_not_tested_on_images(run_main):
    code, err, model_dir = run_main("--dataset=sinusoid", "--backbone=mlp", "--learner=maml",
                                    "--test_dataset=glyphs")
    assert code == 2 and err.strip().endswith(
        " error: --test_dataset=glyphs: cross-domain testing converts images, and "
        "--dataset=sinusoid holds no images.")
    assert err.strip().count("\n") == 0
    assert not any(model_dir.glob("ckpt-*"))


@pytest.mark.slow  # a process of its own, for the check made while the flags are parsed
def test_unknown_test_dataset_is_a_usage_error_of_the_program(tmp_path):
    cli = run_cli(RUN, [*GLYPH_RUN, f"--model_dir={tmp_path / 'model'}", "--test_dataset=nope"],
                  tmp_path, "unknown")
    assert cli.process.returncode == 2
    # The last line (TensorFlow's own start-up lines may precede it under TF_CPP_MIN_LOG_LEVEL).
    assert cli.stderr.splitlines()[-1].startswith(
        "run.py: error: --test_dataset=nope: Unknown dataset 'nope'; available: ")
    assert "Traceback" not in cli.stderr and not (tmp_path / "model").exists()


# ------------------------------------------------------------ the shared real data
@pytest.fixture(scope="module")
def omniglot_run(omniglot_dir, tmp_path_factory):
    """Omniglot (grey, 28 px) trained for 2 steps and evaluated in-domain: `(model_dir, flags)`."""
    model_dir = tmp_path_factory.mktemp("omniglot_run") / "model"
    argv = [f"--model_dir={model_dir}", "--dataset=omniglot", f"--data_dir={omniglot_dir}",
            "--filters=8", *PROTONET]
    code, _, err = call_train(argv + ["--mode=train_and_eval"])
    assert code == 0, err
    return model_dir, argv


def test_omniglot_run_tested_on_glyphs_and_on_the_mini_subset_in_grey(omniglot_run,
                                                                     mini_subset_dir):
    model_dir, argv = omniglot_run
    in_domain = (model_dir / "eval_test.json").read_bytes()
    code, out, err = call_train([*argv, "--mode=eval", "--test_dataset=glyphs"])
    assert code == 0, err
    assert ("Cross-domain test: glyphs test (--test_dataset), trained on omniglot: 28x28x1 "
            "images -> 28x28x1 (resized by glyphs's reader at image_size=28; channels "
            "unchanged).") in out
    glyphs = json.loads((model_dir / "eval_test_glyphs.json").read_text())
    assert glyphs["cross_domain"]["channel_rule"] is None
    assert glyphs["dataset"] == "glyphs"

    cross = [*argv, "--mode=eval", "--test_dataset=miniimagenet",
             f"--test_data_dir={mini_subset_dir}"]
    code, out, err = call_train(cross)
    assert code == 0, err
    assert "trained on omniglot: 84x84x3 images -> 28x28x1" in out
    result = json.loads((model_dir / "eval_test_miniimagenet.json").read_text())
    assert result["cross_domain"]["converted"] == {"size": [28, 28], "channels": 1}
    assert (model_dir / "eval_test.json").read_bytes() == in_domain
    assert json.loads((model_dir / "eval_test_glyphs.json").read_text()) == glyphs

    _, found = _evaluated_episodes(cross)
    test = data.load("miniimagenet", mini_subset_dir, "test")
    files = sorted((mini_subset_dir / "images").glob("*.jpg"))
    wanted = set(test.class_names)
    expected = {_grey_from_file(path, 28).tobytes(): path.name[:9] for path in files
                if path.name[:9] in wanted}
    assert len(set(expected.values())) == 20
    assert _check_against_files(found, expected) == EPISODES * 3 * (1 + 2)


@pytest.mark.slow
def test_mini_subset_run_tested_on_omniglot_in_rgb(mini_subset_dir, omniglot_dir,
                                                   tmp_path):
    model_dir = tmp_path / "model"
    argv = [f"--model_dir={model_dir}", "--dataset=miniimagenet",
            f"--data_dir={mini_subset_dir}", "--image_size=28", "--filters=8", *PROTONET]
    code, _, err = call_train(argv + ["--mode=train_and_eval"])
    assert code == 0, err
    in_domain = (model_dir / "eval_test.json").read_bytes()
    cross = [*argv, "--mode=eval", "--test_dataset=omniglot", f"--test_data_dir={omniglot_dir}"]
    code, out, err = call_train(cross)
    assert code == 0, err
    assert ("trained on miniimagenet: 105x105x1 images -> 28x28x3 (resized by omniglot's "
            "reader at image_size=28; channels grey -> RGB (the grey level repeated)).") in out
    assert (model_dir / "eval_test.json").read_bytes() == in_domain
    record = json.loads((model_dir / "eval_test_omniglot.json").read_text())["cross_domain"]
    assert record["native"] == {"size": 105, "channels": 1}
    assert record["channel_rule"] == "pillow_convert"

    experiment, found = _evaluated_episodes(cross)
    split = experiment.splits["eval_split"]
    # The Omniglot reader's own grey pixels, repeated into RGB, then the miniImageNet
    # run's evaluation preprocessing (augmentation "auto" is on for it: resize by 1.15
    # and centre-crop), not Omniglot's (none).
    grey = data.load("omniglot", omniglot_dir, "test", image_size=28)
    sample = episodes.make_episode_sampler(split, 3, 1, 2, experiment.config.trainer.eval_seed)
    for episode_id, (support, query, _, _) in enumerate(found):
        items, augment_seed = sample(episode_id)
        rgb = np.repeat(grey.load_items(items.numpy()), 3, axis=-1)
        np.testing.assert_array_equal(split.load_items(items.numpy()), rgb)
        expected = preprocess.preprocess(rgb, (28, 28), False, preprocess.AugmentOptions(),
                                         None, augment_seed).numpy()
        pixels = np.concatenate([support, query])
        np.testing.assert_allclose(pixels, expected, rtol=0, atol=1e-6)
        assert np.abs(pixels - rgb / 255).max() > 0.1  # the centre crop is applied


@pytest.mark.slow  # processes of their own: --mode=eval reads config.json while parsing the flags
def test_eval_takes_the_test_flags_from_config_json_until_all_are_emptied(folder_run,
                                                                          class_folders,
                                                                          tmp_path):
    model_dir, _ = folder_run
    root, split_file = class_folders
    eval_only = ["--mode=eval", f"--model_dir={model_dir}"]
    (model_dir / "eval_test_folder.json").unlink(missing_ok=True)
    (model_dir / "eval_test.json").unlink(missing_ok=True)
    cli = run_cli(RUN, eval_only, tmp_path, "saved")
    assert cli.process.returncode == 0, cli.stderr
    assert ("Cross-domain test: folder test (--test_dataset, --test_data_dir="
            f"{root}), trained on glyphs: any-size x3 images -> 16x16x1") in cli.stdout
    saved = json.loads((model_dir / "eval_test_folder.json").read_text())
    assert saved["config"]["test_split_file"] == str(split_file)
    assert not (model_dir / "eval_test.json").exists()

    for name, extra, message in [
            ("dataset_emptied", ["--test_dataset="],
             f"--test_data_dir={root} --test_split_file={split_file} are given without "
             "--test_dataset, the dataset they belong to (--mode=eval takes them from the run's "
             "config.json: --test_dataset= --test_data_dir= --test_split_file= empties them)."),
            ("other_dataset", ["--test_dataset=glyphs", "--test_data_dir="],
             f"--test_split_file={split_file}: --test_dataset=glyphs takes no split file")]:
        cli = run_cli(RUN, [*eval_only, *extra], tmp_path, name)
        assert cli.process.returncode == 2
        assert message in cli.stderr.splitlines()[-1], cli.stderr
        assert "Traceback" not in cli.stderr

    cli = run_cli(RUN, [*eval_only, "--test_dataset=", "--test_data_dir=", "--test_split_file="],
                  tmp_path, "emptied")
    assert cli.process.returncode == 0, cli.stderr
    assert "Cross-domain" not in cli.stdout
    assert json.loads((model_dir / "eval_test.json").read_text())["dataset"] == "glyphs"
    assert json.loads((model_dir / "eval_test_folder.json").read_text()) == saved
