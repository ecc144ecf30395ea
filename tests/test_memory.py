"""The meta-step memory estimate (`mgaug_tf.memory`) and mgaug-train's checks built on it."""

import os
from pathlib import Path

import pytest

from mgaug_tf import memory
from mgaug_tf.data.load import get_dataset
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import GLYPHS

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "mgaug_tf_cli" / "configs").glob("*.cfg")) + sorted(
    (REPO / "configs" / "results").glob("*.cfg"))
GIB = 2 ** 30


def _config(*flags):
    return run_flags.parse_config(list(flags))


def _image_shape(experiment_config):
    """The network input a config trains on: its --image_size or the reader's default.

    None for a dataset of non-image examples (sinusoid), which mgaug-train
    does not estimate.
    """
    dataset = get_dataset(experiment_config.data.dataset)
    if dataset.name == "sinusoid":
        return None
    size = (experiment_config.data.image_size or dataset.options.get("image_size")
            or dataset.native_size)
    channels = 1 if dataset.name in ("omniglot", "glyphs") else 3
    return (size, size, channels)


def test_every_shipped_config_fits_this_machine():
    """The refusal is conservative: no shipped config comes near it."""
    available = memory.available_memory()
    assert len(SHIPPED) >= 30
    estimates, seen, not_images = {}, {}, []
    for path in SHIPPED:
        experiment_config = _config(f"--flagfile={path}")
        shape = _image_shape(experiment_config)
        if shape is None:
            not_images.append(path.name)
            continue
        # The estimate does not depend on MGAug's settings: configs that
        # differ only there share one.
        key = (experiment_config.model.backbone, experiment_config.model.learner,
               experiment_config.episodes, shape)
        if key not in seen:
            seen[key] = memory.estimate_meta_step_memory(experiment_config, shape)
        estimates[path.name] = seen[key].total_bytes
        assert seen[key].total_bytes < available.bytes, (path, seen[key])
    # The released second-order miniImageNet MAML setting is the largest Conv-4 one.
    assert estimates["mini_maml_mgaug.cfg"] > estimates["mini_fomaml_mgaug.cfg"]
    assert not_images == ["sinusoid_maml.cfg", "sinusoid_maml_mgaug.cfg"]


def test_images_kept_follow_the_learner_and_mgaug():
    """Per task: all inner support passes for second order, one for first order or recompute."""
    base = ["--dataset=glyphs", "--image_size=32", "--filters=8", "--n_way=5", "--k_shot=2",
            "--k_query=3", "--inner_steps=4", "--meta_batch_size=7"]
    support, query = 5 * 2, 5 * 3
    kept = {}
    for name, extra in [("maml", []), ("fomaml", ["--learner=fomaml"]),
                        ("recompute", ["--recompute"]), ("metasgd", ["--learner=metasgd"]),
                        ("anil", ["--learner=anil"]), ("protonet", ["--learner=protonet"]),
                        ("maml_k3", ["--mgaug=catfish", "--num_subnets=3"]),
                        ("tasks", ["--meta_batch_size=1"])]:
        estimate = memory.estimate_meta_step_memory(_config(*base, *extra), (32, 32, 1))
        kept[name] = estimate.images_kept
    assert kept == {"maml": 4 * support + query, "fomaml": support + query,
                    "recompute": support + query, "metasgd": 4 * support + query,
                    "anil": support + query, "protonet": support + query,
                    "maml_k3": 4 * support + query, "tasks": 4 * support + query}


def test_activations_grow_with_the_image_area_width_and_dtype():
    def per_image(*flags, size=64, channels=1):
        return memory.backbone_profile(_config(*flags).model.backbone, (size, size, channels))

    small, weights, features = per_image("--filters=8")
    large, same_weights, large_features = per_image("--filters=8", size=128)
    assert weights == same_weights == 4 * (8 * 1 * 9 + 8 + 3 * (8 * 8 * 9 + 8)) + 4 * 4 * 8 * 2
    assert (features, large_features) == (8 * 4 * 4, 8 * 8 * 8)  # 64 / 16 = 4 px grid
    # Per-channel batch-norm moments do not grow with the area; everything else does.
    assert 3.95 * small < large <= 4 * small
    assert 1.9 * small < per_image("--filters=16")[0] <= 2 * small
    assert per_image("--filters=8", "--dtype=mixed_bfloat16")[0] < 0.6 * small


def test_available_memory_reads_the_machine():
    available = memory.available_memory()
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available.bytes <= available.total_bytes <= physical
    assert available.source


def _prepare(capsys, tmp_path, *flags):
    """`train.prepare` of a glyph config in this process: (error or None, stdout)."""
    from mgaug_tf_cli import train  # pylint: disable=import-outside-toplevel

    train.load_libraries()
    # Every caller gives --image_size, which replaces GLYPHS's.
    experiment_config = _config(*GLYPHS, "--mode=train", "--nocheck_image_files",
                                f"--model_dir={tmp_path / 'run'}", *flags)
    try:
        train.prepare(experiment_config)
        error = None
    except train.ConfigError as refused:
        error = str(refused)
    return error, capsys.readouterr().out


def test_an_image_size_far_above_the_data_is_warned_about(capsys, tmp_path):
    error, out = _prepare(capsys, tmp_path, "--image_size=57")
    assert error is None
    assert out.splitlines() == [
        "Warning: --image_size=57 is 2.0 times the 28 px of the glyphs images: they are only "
        "upsampled, and memory and time grow with the square of the size."]
    assert _prepare(capsys, tmp_path, "--image_size=56") == (None, "")


def test_a_meta_step_that_cannot_fit_is_refused_before_any_graph_naming_the_numbers(
        capsys, tmp_path):
    available = memory.available_memory()
    flags = ["--filters=64", "--inner_steps=5", "--k_query=15"]
    size = next(size for size in (512, 1024, 2048, 4096) if memory.estimate_meta_step_memory(
        _config("--dataset=glyphs", "--n_way=3", *flags), (size, size, 1)).total_bytes
        > available.bytes)
    error, out = _prepare(capsys, tmp_path, f"--image_size={size}", *flags)
    assert f"--image_size={size} is" in out
    assert error.startswith("the meta-step needs about ")
    for text in (f"{size}x{size}x1 images", f"of {available.total_bytes / GIB:.1f} GiB are "
                 "available (", "--image_size, --backbone, --filters", "--nocheck_memory"):
        assert text in error
    needed = float(error.split("about ")[1].split(" GiB")[0])
    free = float(error.split("but ")[1].split(" GiB")[0])
    assert needed > free > 0
    # The user's override: the same config is built.
    overridden = _prepare(capsys, tmp_path, f"--image_size={size}", *flags, "--nocheck_memory")
    assert overridden[0] is None
