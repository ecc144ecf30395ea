"""Meta-train, evaluate and export a few-shot learner: the `mgaug-train` program.

    mgaug-train --flagfile=configs/demo.cfg
    mgaug-train --flagfile=configs/tiered.cfg --data_dir=/data/tiered --model_dir=runs/tiered
    tensorboard --logdir runs

(`python trainers/run.py ...` does the same in a checkout.) Rerunning the
same command resumes from the last checkpoint in --model_dir. See
docs/cli.md for the modes, configs, distribution and the SavedModel.
"""

from __future__ import annotations  # the dataclass names types imported later

import ast
import os
import re
import shutil
import sys
import traceback

from mgaug_tf_cli import interrupt, quiet

quiet.configure()  # before TensorFlow loads


def _interrupted_message():
    """The line of an interrupted run, naming what a rerun resumes from.

    Called from the interrupt watchdog's thread too: it reads only the
    run's `checkpoint` file, which names complete checkpoints only.
    """
    # Neither _STATE nor tf exists yet while TensorFlow imports.
    config = globals().get("_STATE", {}).get("config")
    text = f"{quiet.program_name()}: error: interrupted"
    if (globals().get("tf") is None or config is None
            or config.runtime.mode not in ("train", "train_and_eval")):
        return text + "; rerun the same command."
    latest, step = _latest_step(config.runtime.model_dir)
    if latest is None:
        return text + " before the first checkpoint; rerun the same command to start again."
    return text + f"; rerun the same command to resume from step {step} ({latest})."


def _latest_step(model_dir):
    """The latest complete checkpoint of `model_dir` and its step (a string), or (None, None)."""
    latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
    return latest, None if latest is None else latest.rsplit("-", 1)[-1]


_WATCHDOG = interrupt.InterruptWatchdog(_interrupted_message)
if __name__ == "__main__" or quiet.program_name() in ("mgaug-train", "run.py"):
    # Installed at import when this module is the program, so Ctrl-C during flag parsing ends it.
    _WATCHDOG.install()

# pylint: disable=wrong-import-position
import dataclasses

from absl import app
from absl import flags
from absl import logging

from mgaug_tf import checks
from mgaug_tf import config as config_lib
from mgaug_tf_cli import flags as run_flags

# TensorFlow and the library are imported by `load_libraries` once the flags
# are parsed and the config checked: --help or a mistyped flag is answered at
# once instead of after TensorFlow's import.
keras = tf = mg = data = distribute = export = factory = memory = preprocess = None
checkpoints = evaluation = files = inputs = summaries = trainer = native_image_size = None
get_dataset = tfds_source = with_channels = convert = None


def load_libraries():
    """Imports TensorFlow and the library into this module's names (once)."""
    # pylint: disable=global-statement,import-outside-toplevel,redefined-outer-name
    global keras, tf, mg, data, distribute, export, factory, memory, preprocess
    global checkpoints, evaluation, files, inputs, summaries, trainer, native_image_size
    global get_dataset, tfds_source, with_channels, convert
    if tf is not None:
        return
    with quiet.native_stderr():
        import keras
        import tensorflow as tf

        import mgaug_tf as mg
        from mgaug_tf import data, distribute, export, factory, memory
        from mgaug_tf.data import convert, tfds_source
        from mgaug_tf.data.convert import with_channels
        from mgaug_tf.data.load import get_dataset, native_image_size
        from mgaug_tf.data import preprocess
        from mgaug_tf.training import checkpoints, evaluation, files, inputs, summaries, trainer
        # Finds the devices (cuInit) now, while the noise of a machine without
        # a GPU is filtered; later calls reuse the result.
        tf.config.list_physical_devices()


# --dataset is checked after the rest of the config: its table needs TensorFlow.
run_flags.define_flags(check_dataset_name=False)

EXIT_USAGE = 2  # bad flags, missing or unreadable data, unusable checkpoint
EXIT_NON_FINITE = 3  # NaN/Inf loss or weights
CONFIG_FILE = "config.json"
FLAGFILE = "flags.cfg"

class ConfigError(Exception):
    """Bad flags or data: reported as one message, without a traceback."""


# ----------------------------------------------------------------- checks
def saved_config(model_dir):
    """The config of the run in `model_dir` (config.json, else an older run's flags.cfg).

    Returns None when the folder holds neither.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                return config_lib.ExperimentConfig.from_json(handle.read())
        except (OSError, ValueError) as error:  # JSONDecodeError, ArgumentError are ValueErrors
            raise ConfigError(
                f"--model_dir={model_dir}: {path} cannot be read as this version's config "
                f"({error}). Restore it, or delete it to compare the run through its "
                f"{FLAGFILE}, or use a new --model_dir.") from None
    path = os.path.join(model_dir, FLAGFILE)
    if os.path.exists(path):
        try:
            return run_flags.config_from_flagfile(path)
        except (flags.Error, run_flags.FlagfileError) as error:
            raise ConfigError(f"--model_dir={model_dir}: its {FLAGFILE} cannot be read as "
                              f"this version's flags ({error}); use a new --model_dir.") from None
    return None


def _check_model_dir(experiment_config):
    """Refuses to resume a run whose model-defining settings differ from these."""
    model_dir = experiment_config.runtime.model_dir
    if tf.train.latest_checkpoint(model_dir) is None:
        return
    saved = saved_config(model_dir)
    if saved is None:
        return
    differences = config_lib.differences(saved, experiment_config)
    changed = [f"{run_flags.flag_text(spec, before) or f'(unset) --{spec.flag}'} there, "
               f"{run_flags.flag_text(spec, now) or f'(unset) --{spec.flag}'} now "
               f"({spec.path})"
               for spec, before, now in differences]
    if changed:
        # --split_file is the training data's; a new user may mean the test dataset's.
        hint = ("; a --test_dataset's split file is --test_split_file"
                if any(spec.path == "data.split_file" for spec, _, _ in differences) else "")
        raise ConfigError(
            f"--model_dir={model_dir} holds checkpoints of a run with other fixed flags (the "
            "model and its training data): " + "; ".join(changed) + f". Resume with that "
            f"run's flags ({os.path.join(model_dir, FLAGFILE)}) or use a new --model_dir"
            f"{hint}.")


# A Python literal as an `ArgumentError`'s message shows it after `argument=`.
_LITERAL = r"True|False|None|-?[0-9][0-9.e+-]*|'[^']*'|\([^()]*\)"


def _field_error(error, experiment_config):
    """A constructor's refusal of config fields as a `ConfigError` naming their flags.

    When the refused argument is one field, the constructor's spelling of it
    in the message (`include_dense`, include_dense=True) becomes the flag's
    (--mgaug_include_dense): the user sets flags, not arguments.
    """
    message = error.message
    cause = error.__cause__
    argument = getattr(cause, "argument", None)
    spec = config_lib.FIELDS[error.paths[0]] if len(error.paths) == 1 else None
    current = None if spec is None else config_lib.get(experiment_config, spec.path)
    # Only an argument that is the field itself (the same value) is renamed: one
    # derived from it (Conv4's input_shape from --image_size) keeps its name.
    if argument is not None and spec is not None and getattr(cause, "value", None) == current:

        def flag(match):
            if match.group(1) is None:
                return f"--{spec.flag}"
            value = ast.literal_eval(match.group(1))
            # Only values of the field's type: an argument derived from it keeps its spelling.
            if type(value) is not type(current):  # pylint: disable=unidiomatic-typecheck
                return match.group(0)
            return run_flags.flag_text(spec, value) or match.group(0)

        message = re.sub(rf"`{re.escape(argument)}`|\b{re.escape(argument)}=({_LITERAL})",
                         flag, message)
    return ConfigError(f"{run_flags.describe(error.paths, experiment_config)}: {message}")


def _load_split(experiment_config, split_field):
    """The split named by `DataConfig.<split_field>` ("train_split", ...)."""
    config = experiment_config.data
    name = getattr(config, split_field)
    options = {"image_size": config.image_size} if config.image_size else {}
    # Options of the user's own data (folder, arrays); other readers refuse them by name.
    options.update((option, getattr(config, option)) for option in ("split_file", "channels")
                   if getattr(config, option) is not None)
    limit = split_field == "train_split" and config.max_train_classes
    try:
        split = data.load(config.dataset, config.data_dir, name, **options)
        if limit:
            split = split.sample_source_classes(config.max_train_classes,
                                                config.train_classes_seed)
        return split
    except data.DataNotFoundError as error:
        raise ConfigError(f"--data_dir={config.data_dir}: {error}") from None
    except data.OptionError as error:
        # The reader's words name `load`'s arguments; these flags set them.
        if error.arguments == ("data_dir",):
            raise ConfigError(f"--data_dir={config.data_dir}: --dataset={config.dataset} is "
                              "generated and reads no files; leave --data_dir unset.") from None
        given = " ".join(f"--{option}={options[option]}" for option in error.arguments)
        them = "it" if len(error.arguments) == 1 else "them"
        flags_of = ("image_size", "channels", "split_file")
        takes = ", ".join(f"--{option}" for option in flags_of if option in error.accepted)
        raise ConfigError(f"{given}: --dataset={config.dataset} does not take {them} (it takes "
                          f"{takes or 'none of --image_size, --channels, --split_file'}); "
                          f"leave {them} unset.") from None
    except (data.CorruptDataError, ValueError) as error:
        from mgaug_tf.errors import ArgumentError  # pylint: disable=import-outside-toplevel
        if isinstance(error, ArgumentError) and error.argument in options:
            raise ConfigError(f"--{error.argument}={options[error.argument]}: {error}.") \
                from None
        limit = f" --max_train_classes={config.max_train_classes}" if limit else ""
        raise ConfigError(f"--dataset={config.dataset} --{split_field}={name}{limit}: "
                          f"{error}") from None


def _objective(experiment_config):
    """`"regression"` for the sinusoid tasks, else `"classification"` (from --dataset)."""
    from mgaug_tf.data.load import dataset_objective  # pylint: disable=import-outside-toplevel
    return dataset_objective(experiment_config.data.dataset)


def _check_regression_flags(experiment_config):
    """Refuses the image and class options for the sinusoid tasks (points, no classes).

    Raises:
        ConfigError: --image_size, --augment=on, --max_train_classes or
            --resolutions with --dataset=sinusoid.
    """
    config = experiment_config.data
    if _objective(experiment_config) != "regression":
        return
    given = [text for text, used in (
        (f"--image_size={config.image_size}", config.image_size is not None),
        ("--augment=on", config.augment == "on"),
        (f"--max_train_classes={config.max_train_classes}",
         config.max_train_classes is not None),
        ("--resolutions=" + ",".join(map(str, experiment_config.model.mgaug.resolutions)),
         bool(experiment_config.model.mgaug.resolutions))) if used]
    if given:
        raise ConfigError(f"{', '.join(given)}: --dataset={config.dataset} has points x in "
                          "[-5, 5], not images or classes; leave these unset (--n_way does not "
                          "apply either: --k_shot and --k_query are the support and query "
                          "points per task).")


def _episode_text(experiment):
    """The episodes of the run, for its first line: `5-way 1-shot, 28x28x1` or the regression's."""
    config = experiment.config
    shape = "x".join(map(str, experiment.image_shape))
    if _objective(config) == "regression":
        return (f"regression, {config.episodes.k_shot} support and "
                f"{config.episodes.k_query} query points per task, examples of shape {shape}")
    return f"{config.model.learner.n_way}-way {config.episodes.k_shot}-shot, {shape}"


# The registered backbones that take images [H, W, C] only.
IMAGE_BACKBONES = ("conv4", "resnet12", "resnet10")


def _check_backbone_takes(experiment_config, example_shape):
    """Refuses an image backbone for examples that are not `[H, W, C]` images.

    Raises:
        ConfigError: Naming --backbone, --dataset and the examples' shape.
    """
    backbone = experiment_config.model.backbone.name
    if backbone in IMAGE_BACKBONES and len(example_shape) != 3:
        raise ConfigError(
            f"--backbone={backbone} takes images [height, width, channels], but "
            f"--dataset={experiment_config.data.dataset} has examples of shape "
            f"{tuple(example_shape)}; use --backbone=mlp (--hidden_units), which flattens "
            "examples of any shape, or a backbone registered for them.")


def _k_query(experiment_config, split_field):
    """Query images per class of the episodes drawn from a split."""
    episodes = experiment_config.episodes
    if split_field != "train_split" and episodes.eval_k_query is not None:
        return episodes.eval_k_query
    return episodes.k_query


def _check_episodes(experiment_config, split, split_field, flags_text=None):
    """n_way classes with k_shot + k_query images each must exist in the split.

    `flags_text` names the flags that chose the split (default: --<split_field>).
    """
    where = f"{split.dataset} {split.split} ({flags_text or f'--{split_field}'})"
    if _objective(experiment_config) == "regression":
        return  # a task family: any number of tasks, no classes to count
    if not split.is_image and experiment_config.data.augment == "on":
        # episode_dataset refuses augmentation for such splits; said here with the flag.
        raise ConfigError(f"--augment=on, but {where} holds non-image examples of shape "
                          f"{split.example_shape}, which are never augmented; use --augment=auto "
                          "or off.")
    n_way = experiment_config.model.learner.n_way
    k_shot = experiment_config.episodes.k_shot
    if n_way > split.num_classes:
        raise ConfigError(f"--n_way={n_way} is more than the {split.num_classes} classes "
                          f"of {where}.")
    k_query = _k_query(experiment_config, split_field)
    query_flag = "eval_k_query" if split_field != "train_split" and (
        experiment_config.episodes.eval_k_query is not None) else "k_query"
    needed = k_shot + k_query
    eligible = int((split.class_sizes >= needed).sum())
    short = data.episodes.short_classes(split, needed)
    if split.strict_class_sizes and short:
        count = split.num_classes - eligible
        have, them = ("has", "it") if count == 1 else ("have", "them")
        raise ConfigError(
            f"--k_shot + --{query_flag} = {k_shot} + {k_query} = {needed} examples per "
            f"class, but {data.errors.counted(count, 'class', 'classes')} of {where} {have} "
            f"fewer: {short}. Add examples to {them}, remove {them} from the split, or lower "
            f"--k_shot or --{query_flag}.")
    if eligible < n_way:
        have = "has" if eligible == 1 else "have"
        raise ConfigError(
            f"--k_shot + --{query_flag} = {k_shot} + {k_query} = {needed} images per "
            f"class, but only {data.errors.counted(eligible, 'class', 'classes')} of {where} "
            f"{have} that many (the largest has {int(split.class_sizes.max())}; short: "
            f"{short}); --n_way={n_way} needs {n_way}.")


def _check_images(experiment_config, splits, say):
    """The pre-flight image check (--check_image_files, --verify_images) of the chosen splits.

    Raises:
        ConfigError: Listing every unreadable image found.
    """
    config = experiment_config.data
    if not (config.check_image_files or config.verify_images):
        return
    problems, checked = [], set()
    for split_field, split in splits.items():
        # The same split may serve two roles (--eval_split=val); a --test_dataset
        # split comes from its own folder even when its names match.
        key = (split_field == "eval_split" and bool(config.test_dataset), split.dataset,
               split.split)
        if key in checked:
            continue
        checked.add(key)
        if not split.is_image:
            continue  # arrays and sinusoid points: no image files to check
        progress = None
        if config.verify_images:
            total = int(split.class_sizes.sum())
            say(f"Decoding the {total} images of {split.dataset} {split.split} (--verify_images)")
            if say.enabled:
                bar = keras.utils.Progbar(total, unit_name="image",
                                          interval=0.5 if sys.stdout.isatty() else 30.0)
                progress = bar.update
        problems += split.check_images(decode=config.verify_images, progress=progress)
    if problems:
        how = ("decoded" if config.verify_images
               else "quick check of sizes and signatures, --check_image_files")
        raise ConfigError(
            f"{len(problems)} image(s) of the chosen splits cannot be read ({how}):\n  "
            + "\n  ".join(problems) + "\nReplace or remove these files (and their entries in "
            "the split's list) and rerun.")


# ----------------------------------------------------------------- cross-domain testing
# --mode=eval takes the test flags from the run's config.json, so a refusal says how to empty them.
_EMPTY_TEST_FLAGS = ("--mode=eval takes them from the run's config.json: --test_dataset= "
                     "--test_data_dir= --test_split_file= empties them")


def _check_test_dataset(experiment_config):
    """--test_dataset, --test_data_dir and --test_split_file, before any data is read (cheap).

    Raises:
        ConfigError: An unknown --test_dataset, one that holds no images, one
            that reads files but has no --test_data_dir, a generated one given
            a --test_data_dir, a --test_split_file for a dataset that takes no
            split file, or a --test_data_dir or --test_split_file without
            --test_dataset.
    """
    config = experiment_config.data
    name, folder = config.test_dataset, config.test_data_dir
    split_file = config.test_split_file
    if not name:
        given = [f"--test_data_dir={folder}"] if folder else []
        given += [f"--test_split_file={split_file}"] if split_file else []
        if given:
            verb, pronoun = ("is", "it belongs") if len(given) == 1 else ("are", "they belong")
            raise ConfigError(f"{' '.join(given)} {verb} given without --test_dataset, the "
                              f"dataset {pronoun} to ({_EMPTY_TEST_FLAGS}).")
        return
    if tfds_source.is_tfds_name(name):
        try:
            dataset = tfds_source.get_dataset(name)
        except ValueError as error:
            raise ConfigError(f"--test_dataset={name}: {error}") from None
        _check_test_split_file(name, dataset, split_file)
        return  # the TFDS data_dir defaults as for --dataset
    try:
        dataset = get_dataset(name)
    except ValueError as error:
        raise ConfigError(f"--test_dataset={name}: {error}") from None
    if "image_size" not in dataset.options:
        raise ConfigError(f"--test_dataset={name}: cross-domain testing reads the test images "
                          f"at the training image size, and {dataset.name} holds no images.")
    if dataset.needs_data_dir and not folder:
        raise ConfigError(f"--test_dataset={name} needs --test_data_dir, the folder holding "
                          f"its files (docs/data.md lists the layouts).")
    if not dataset.needs_data_dir and folder:
        raise ConfigError(f"--test_data_dir={folder}: --test_dataset={name} is generated and "
                          "reads no files; leave --test_data_dir unset.")
    _check_test_split_file(name, dataset, split_file)


def _check_test_split_file(name, dataset, split_file):
    """Refuses --test_split_file for a dataset whose reader takes no `split_file` option."""
    if split_file and "split_file" not in dataset.options:
        raise ConfigError(f"--test_split_file={split_file}: --test_dataset={name} takes no "
                          f"split file (its splits are its own); leave --test_split_file "
                          f"unset ({_EMPTY_TEST_FLAGS}).")


def _test_flags(experiment_config):
    config = experiment_config.data
    split_file = (f" --test_split_file={config.test_split_file}" if config.test_split_file
                  else "")
    return f"--test_dataset={config.test_dataset}{split_file} --eval_split={config.eval_split}"


def _load_test_split(experiment_config, train_split, image_shape):
    """--test_dataset's --eval_split read at the training size and converted to its channels.

    The reader resizes its own files to the training image size (as its
    `image_size` option does for training on it); `with_channels` then converts
    grey to RGB or RGB to grey by the readers' Pillow rule.

    Returns:
        `(split, record)`: the converted `FewShotSplit` and the JSON-ready
        record of the conversion written with the results.

    Raises:
        ConfigError: Missing or unreadable files, a split without n_way
            classes of k_shot + eval queries images, or a training dataset
            that holds no images.
    """
    config = experiment_config.data
    if not train_split.is_image:
        raise ConfigError(f"--test_dataset={config.test_dataset}: cross-domain testing "
                          f"converts images, and --dataset={config.dataset} holds no images.")
    options = {"image_size": image_shape[0]}
    if config.test_split_file:  # the folder's classes of each split (`_check_test_dataset`)
        options["split_file"] = config.test_split_file
    try:
        native = data.load(config.test_dataset, config.test_data_dir or None, config.eval_split,
                           **options)
    except data.DataNotFoundError as error:
        # tfds: names may leave --test_data_dir unset (TensorFlow Datasets' default folder).
        where = (f"--test_data_dir={config.test_data_dir}" if config.test_data_dir
                 else f"--test_dataset={config.test_dataset}")
        if config.test_split_file:  # the missing file may be the split file
            where += f" --test_split_file={config.test_split_file}"
        # The reader names its option; the test dataset's flag for it is another than --split_file.
        flag = (" Give it as --test_split_file." if "split_file" in str(error)
                and not config.test_split_file else "")
        raise ConfigError(f"{where}: {error}{flag}") from None
    except (data.CorruptDataError, ValueError) as error:
        raise ConfigError(f"{_test_flags(experiment_config)}: {error}") from None
    split = with_channels(native, image_shape[2])
    _check_episodes(experiment_config, split, "eval_split", _test_flags(experiment_config))
    channels = {(1, 3): "grey -> RGB (the grey level repeated)",
                (3, 1): "RGB -> grey (Pillow's ITU-R 601-2 luma)"}.get(
                    (native.image_shape[2], image_shape[2]), "unchanged")
    record = {
        "train_dataset": train_split.dataset, "test_dataset": split.dataset,
        "test_data_dir": config.test_data_dir or None, "split": split.split,
        # The dataset's own size (None: it varies), and the channels its reader gives.
        "native": {"size": native_image_size(config.test_dataset),
                   "channels": native.image_shape[2]},
        "converted": {"size": list(image_shape[:2]), "channels": image_shape[2]},
        "resize": f"{split.dataset}'s reader at image_size={image_shape[0]}",
        "channel_conversion": channels,
        "channel_rule": convert.CHANNEL_RULE if channels != "unchanged" else None}
    return split, record


def _conversion_text(record):
    """The log line of a cross-domain evaluation's data and conversion."""
    size = record["native"]["size"]
    channels = record["native"]["channels"]
    native = f"{size}x{size}x{channels}" if size else f"any-size x{channels}"
    converted = "x".join(map(str, record["converted"]["size"] + [record["converted"]["channels"]]))
    where = f", --test_data_dir={record['test_data_dir']}" if record["test_data_dir"] else ""
    return (f"Cross-domain test: {record['test_dataset']} {record['split']} (--test_dataset"
            f"{where}), trained on {record['train_dataset']}: {native} images -> {converted} "
            f"(resized by {record['resize']}; channels {record['channel_conversion']}).")


def _result_name(split, record):
    """eval_<split>.json, or eval_<split>_<test dataset>.json for a cross-domain test."""
    if record is None:
        return f"eval_{split.split}.json"
    return f"eval_{split.split}_{re.sub(r'[^A-Za-z0-9_.-]', '_', split.dataset)}.json"


# An image size this many times the data's own only upsamples, at a quadratic cost.
UPSAMPLING_WARNING_FACTOR = 2
MEMORY_FLAGS = ("--image_size", "--backbone", "--filters", "--dtype", "--learner",
                "--inner_steps", "--recompute", "--n_way", "--k_shot", "--k_query", "--mgaug",
                "--num_subnets")


def _check_size_and_memory(experiment_config, train_split, image_shape, say):
    """Warns of an image size far above the data's; refuses a meta-step that cannot fit.

    Runs before any graph is built (the estimate traces one image's forward
    pass only). Only training builds the meta-step.

    Raises:
        ConfigError: The estimate (`mgaug_tf.memory`) exceeds the memory available.
    """
    if not train_split.is_image:
        return  # no image size; the networks for such examples are small
    native = native_image_size(train_split.dataset)
    if native and image_shape[0] > UPSAMPLING_WARNING_FACTOR * native:
        say(f"Warning: --image_size={image_shape[0]} is {image_shape[0] / native:.1f} times "
            f"the {native} px of the {train_split.dataset} images: they are only upsampled, "
            "and memory and time grow with the square of the size.")
    if not (_training(experiment_config) and experiment_config.runtime.check_memory):
        return
    try:
        estimate = memory.estimate_meta_step_memory(experiment_config, image_shape)
    except config_lib.ConfigFieldError as error:
        raise _field_error(error, experiment_config) from None
    available = memory.available_memory()
    if estimate.total_bytes > available.bytes:
        gib = 2 ** 30
        raise ConfigError(
            f"the meta-step needs about {estimate.total_bytes / gib:.1f} GiB (estimated for "
            f"{'x'.join(map(str, image_shape))} images, {estimate.images_kept} image passes "
            f"kept per task, {estimate.activation_bytes_per_image / 2 ** 20:.1f} MiB each), "
            f"but {available.bytes / gib:.1f} GiB of {available.total_bytes / gib:.1f} GiB "
            f"are available ({available.source}). Lower "
            + ", ".join(MEMORY_FLAGS) + " (or pass --recompute, a first-order --learner), or "
            "pass --nocheck_memory if you know it fits.")


def _export_dir(runtime):
    return runtime.export_dir or os.path.join(runtime.model_dir, "export")


def _run_entries():
    """The names of a model_dir's own files and folders."""
    return ("train", "val", "eval", checkpoints.BEST, "checkpoint", FLAGFILE, CONFIG_FILE,
            files.LOCK_FILE)


def _check_export_dir(runtime):
    """The export must not mix with other files or write over the model_dir's own."""
    export_dir = os.path.abspath(_export_dir(runtime))
    model_dir = os.path.abspath(runtime.model_dir)
    own_default = export_dir == os.path.join(model_dir, "export")
    name = os.path.basename(export_dir)
    if (export_dir == model_dir or model_dir.startswith(export_dir.rstrip(os.sep) + os.sep)
            or (os.path.dirname(export_dir) == model_dir
                and (name in _run_entries() or name.startswith(("ckpt-", "eval_"))))):
        raise ConfigError(f"--export_dir={runtime.export_dir} would write the SavedModel over "
                          f"the files of --model_dir={runtime.model_dir}; use a folder of its "
                          "own (default: model_dir/export).")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ConfigError(f"--export_dir={runtime.export_dir} is a file, not a folder.")
    if (not own_default and os.path.isdir(export_dir) and os.listdir(export_dir)
            and not runtime.overwrite_export):
        raise ConfigError(f"--export_dir={runtime.export_dir} is not empty; pass "
                          "--overwrite_export to replace its contents, or choose a new folder.")
    # The export replaces the folder, so the folder holding it must be writable.
    problem = files.write_problem(os.path.dirname(export_dir))
    if problem:
        given = (f"--export_dir={runtime.export_dir}" if runtime.export_dir
                 else f"--model_dir={runtime.model_dir} (the SavedModel's default place, "
                      f"{export_dir})")
        raise ConfigError(f"{given} cannot be written ({problem}); pass --export_dir=FOLDER "
                          "you can write to.")


# ----------------------------------------------------------------- builders
def build_learner(experiment_config, image_shape):
    """`factory.build_learner` with refused values reported by their flags.

    `image_shape=None` constructs the learner without building it: a check of
    the model settings that costs no weights, made before any data is read.
    """
    try:
        return factory.build_learner(experiment_config.model, image_shape,
                                     seed=experiment_config.trainer.seed,
                                     objective=_objective(experiment_config))
    except config_lib.ConfigFieldError as error:
        raise _field_error(error, experiment_config) from None


def _hparams(experiment_config):
    """The config as HParams values (bool, int, float or str), by flag name."""
    values = {}
    for name, value in run_flags.flag_dict(experiment_config).items():
        if isinstance(value, list):
            value = ",".join(map(str, value))
        values[name] = "default" if value is None else value
    return values


class _Say:
    """`say(text)` prints on the chief only."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __call__(self, text):
        if self.enabled:
            print(text, flush=True)


# ----------------------------------------------------------------- phases
@dataclasses.dataclass
class Experiment:
    """Everything the modes share, built and checked from the config before any work."""

    config: config_lib.ExperimentConfig
    strategy: object
    role: distribute.WorkerRole
    image_shape: tuple
    splits: dict  # DataConfig field ("train_split", ...) -> FewShotSplit
    augment: object
    learner: object
    checkpoints: checkpoints.RunCheckpoints
    summaries: summaries.RunSummaries
    evaluator: evaluation.EpisodeEvaluator
    # `files.write_problem(model_dir)` as `prepare` found it: None when writable.
    model_dir_problem: str | None = None
    # The conversion record of a --test_dataset evaluation (`_load_test_split`), else None.
    cross_domain: dict | None = None

    def spec(self, split_field, seed):
        """The `EpisodeSpec` of a split named by its `DataConfig` field."""
        augment = self.augment
        if split_field == "eval_split" and self.cross_domain is not None:
            # The model's own evaluation preprocessing: "auto" follows the
            # training dataset (Omniglot: none), not the test dataset.
            augment = preprocess.resolve_augment(augment,
                                                 self.splits["train_split"].default_augment)
        return inputs.EpisodeSpec(self.splits[split_field], self.config.model.learner.n_way,
                                  self.config.episodes.k_shot,
                                  _k_query(self.config, split_field),
                                  self._image_size(split_field),
                                  augment, seed)

    def _image_size(self, split_field):
        """The episodes' image size, or None for examples that are not images."""
        is_image = self.splits[split_field].is_image
        return self.image_shape[0] if is_image else None

    def say(self, text):
        """Prints on the chief only (every worker runs the same code)."""
        if self.role.is_chief:
            print(text, flush=True)


def _training(experiment_config):
    return experiment_config.runtime.mode in ("train", "train_and_eval")


def _evaluating(experiment_config):
    return experiment_config.runtime.mode in ("eval", "train_and_eval")


def set_op_threads(runtime):
    """Sets the threads one TensorFlow op may use in this process (`--intra_op_threads`).

    None leaves TensorFlow's choice (one per core). Must run before the
    process's first TensorFlow op, which fixes its thread pools.

    Args:
        runtime: A `config.RuntimeConfig`; its `intra_op_threads` is read.

    Raises:
        ConfigError: TensorFlow has already started in this process with
            another thread count (a program that runs `run` after its own ops).
    """
    load_libraries()
    if runtime.intra_op_threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(runtime.intra_op_threads)
    except RuntimeError:
        raise ConfigError(
            f"--intra_op_threads={runtime.intra_op_threads}: TensorFlow has already started in "
            f"this process with {tf.config.threading.get_intra_op_parallelism_threads()} "
            "(0: one per core); set it before the process's first TensorFlow op, or leave it "
            "unset.") from None


def prepare(experiment_config):
    """Checks the config against devices, model_dir and data; builds the experiment.

    Raises:
        ConfigError, distribute.DistributionError: Bad flags or data.
    """
    runtime = experiment_config.runtime
    training, evaluating = _training(experiment_config), _evaluating(experiment_config)
    # Thread and device setup must precede every other TensorFlow call.
    set_op_threads(runtime)
    if runtime.cpu_devices:
        distribute.split_cpu(runtime.cpu_devices)
    strategy = distribute.create_strategy(runtime.strategy)
    role = distribute.worker_role(strategy)
    replicas = strategy.num_replicas_in_sync
    meta_batch_size = experiment_config.episodes.meta_batch_size
    if meta_batch_size % replicas:
        raise ConfigError(f"--meta_batch_size={meta_batch_size} is not divisible by the "
                          f"{replicas} replicas of --strategy={runtime.strategy}; each replica "
                          "takes the same number of tasks.")
    if not training and tf.train.latest_checkpoint(runtime.model_dir) is None:
        raise ConfigError(f"--mode={runtime.mode} needs a trained run, but --model_dir="
                          f"{runtime.model_dir} holds no checkpoint.")
    problem = files.write_problem(runtime.model_dir)
    if training and problem:
        raise ConfigError(f"--model_dir={runtime.model_dir} cannot be written ({problem}); "
                          "training writes its checkpoints, summaries and config there: use a "
                          "folder you can write to.")
    _check_model_dir(experiment_config)
    if runtime.mode != "eval":
        _check_export_dir(runtime)
    # The model and optimizer settings, before reading any data: MGAug against
    # the image size first (when the config gives it), then everything the
    # learner checks.
    try:
        if experiment_config.data.image_size is not None:
            factory.build_augmentation(experiment_config.model.mgaug,
                                       experiment_config.data.image_size)
        factory.build_optimizer(experiment_config.optimizer)
    except config_lib.ConfigFieldError as error:
        raise _field_error(error, experiment_config) from None
    _check_regression_flags(experiment_config)
    build_learner(experiment_config, None)
    _check_test_dataset(experiment_config)
    cross_domain = evaluating and bool(experiment_config.data.test_dataset)
    split_fields = ["train_split"] + (["val_split"] if training else []) + (
        ["eval_split"] if evaluating and not cross_domain else [])
    splits = {}
    for split_field in split_fields:
        splits[split_field] = _load_split(experiment_config, split_field)
        _check_episodes(experiment_config, splits[split_field], split_field)
    train_split = splits["train_split"]
    if train_split.is_image:
        size = experiment_config.data.image_size or train_split.image_shape[0]
        image_shape = (size, size, train_split.image_shape[2])
    else:  # vectors, sequences, the sinusoid's points: the examples' own shape
        image_shape = tuple(train_split.example_shape)
        _check_backbone_takes(experiment_config, image_shape)
    record = None
    if cross_domain:  # the final evaluation's split, from --test_dataset
        splits["eval_split"], record = _load_test_split(experiment_config, train_split,
                                                        image_shape)

    if experiment_config.trainer.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(experiment_config.trainer.seed)  # the weights follow it
    with strategy.scope():
        # Built before the image check: the image size and resolutions are refused first.
        learner = build_learner(experiment_config, image_shape)
    # After the learner has refused sizes it cannot take; before any graph.
    say = _Say(role.is_chief)
    # The user's own images, of any size and mode (a task family has no files).
    if getattr(train_split, "conversion", None):
        say(f"Data: {train_split.conversion}.")
    _check_size_and_memory(experiment_config, train_split, image_shape, say)
    _check_images(experiment_config, splits, say)
    with strategy.scope():
        learner.compile(optimizer=factory.build_optimizer(experiment_config.optimizer))
        # mixed_float16: compile wrapped it in a LossScaleOptimizer, whose
        # dynamic loss scale the checkpoints must hold too.
        optimizer = learner.optimizer
        optimizer.build(learner.trainable_variables)
    return Experiment(
        config=experiment_config, strategy=strategy, role=role, image_shape=image_shape,
        splits=splits,
        augment={"auto": "auto", "on": True, "off": False}[experiment_config.data.augment],
        learner=learner,
        checkpoints=checkpoints.RunCheckpoints(runtime.model_dir, role, learner, optimizer,
                                               experiment_config.trainer.keep_checkpoints),
        summaries=summaries.RunSummaries(runtime.model_dir, enabled=role.is_chief,
                                         mgaug_strategy=experiment_config.model.mgaug.strategy),
        evaluator=evaluation.EpisodeEvaluator(learner, strategy), model_dir_problem=problem,
        cross_domain=record)


def train(experiment):
    """Meta-trains (resuming from model_dir), validating every --eval_every steps."""
    experiment_config = experiment.config
    model_dir = experiment_config.runtime.model_dir
    settings = experiment_config.trainer
    if experiment.role.is_chief:
        os.makedirs(model_dir, exist_ok=True)
        text = run_flags.flagfile_text(experiment_config)
        files.write_text(os.path.join(model_dir, FLAGFILE), text)
        files.write_text(os.path.join(model_dir, CONFIG_FILE), experiment_config.to_json() + "\n")
        experiment.summaries.hyperparameters(_hparams(experiment_config), text)
    val_spec = experiment.spec("val_split", settings.eval_seed)
    meta_trainer = trainer.MetaTrainer(
        experiment.learner, experiment.strategy, experiment.spec("train_split", settings.seed),
        experiment_config.episodes.meta_batch_size, experiment.checkpoints,
        experiment.summaries,
        validator=lambda: experiment.evaluator(val_spec, settings.val_episodes),
        eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        summary_every=settings.summary_every, show_progress=experiment.role.is_chief)
    # Kept until `_exit_now`: destroying its input iterator can block for a
    # minute in TensorFlow 2.21 (MetaTrainer.train's docstring).
    _STATE["meta_trainer"] = meta_trainer
    meta_trainer.train(settings.train_steps)


def evaluate(experiment, checkpoint_path):
    """Evaluates the restored weights; prints and writes `eval_<split>.json` (95 % CI)."""
    experiment_config = experiment.config
    settings = experiment_config.trainer
    split = experiment.splits["eval_split"]
    record = experiment.cross_domain
    what = split.split if record is None else f"{split.dataset} {split.split} (cross-domain)"
    experiment.say(f"Evaluating {checkpoint_path} on {settings.eval_episodes} {what} "
                   "episodes")
    result = experiment.evaluator(experiment.spec("eval_split", settings.eval_seed),
                                  settings.eval_episodes)
    experiment.say(result.summary() if record is None
                   else f"{split.dataset} {result.summary()}")
    if not experiment.role.is_chief:
        return
    problem = files.write_problem(experiment_config.runtime.model_dir)
    if problem:  # a finished run in a read-only folder: the printed result is the output
        experiment.say(f"Not written to --model_dir={experiment_config.runtime.model_dir} "
                       f"({problem}).")
        return
    step = int(experiment.checkpoints.step.numpy())
    learner_config = experiment_config.model.learner
    name = _result_name(split, record)
    path = os.path.join(experiment_config.runtime.model_dir, name)
    files.write_json(path, result.to_json(
        checkpoint=checkpoint_path, step=step, dataset=split.dataset,
        bn_mode=learner_config.bn_mode, learner=learner_config.name,
        n_way=None if result.regression else learner_config.n_way,
        k_shot=experiment_config.episodes.k_shot,
        k_query=_k_query(experiment_config, "eval_split"),
        eval_inner_steps=getattr(experiment.learner, "eval_inner_steps", None),
        eval_seed=settings.eval_seed, config=run_flags.flag_dict(experiment_config),
        **({} if record is None else {"cross_domain": record})))
    # A cross-domain result gets its own TensorBoard tag (test_<dataset>/accuracy).
    experiment.summaries.evaluation(step, result if record is None else dataclasses.replace(
        result, split=name[len("eval_"):-len(".json")]))
    experiment.summaries.flush()
    experiment.say(f"Results: {path}")


def export_model(experiment, checkpoint_path):
    """Writes the restored weights as a few-shot inference SavedModel."""
    runtime = experiment.config.runtime
    export_dir = _export_dir(runtime)
    _check_export_dir(runtime)  # again: the folder may have changed while training
    if os.path.isdir(export_dir):  # the run's own earlier export, or --overwrite_export
        shutil.rmtree(export_dir)
    # A plain (undistributed) copy of the learner: the SavedModel must not
    # depend on the training devices.
    serving_learner = build_learner(experiment.config, experiment.image_shape)
    serving_learner.set_weights(experiment.learner.get_weights())
    train_split = experiment.splits["train_split"]
    preprocessing = eval_augment = None
    if train_split.is_image:
        eval_augment = preprocess.resolve_augment(experiment.augment,
                                                  train_split.default_augment)
        # The episodes' own preprocessing (reader, then evaluation form), carried
        # into the SavedModel's graph for raw images.
        preprocessing = export.InputPreprocessing.from_split(
            train_split, experiment.image_shape[0], experiment.augment)
    # Otherwise (arrays, the sinusoid's points) the one signature takes float32
    # examples as the episodes give them (`export.export_saved_model`).
    export.export_saved_model(serving_learner, export_dir, preprocessing, metadata={
        "checkpoint": checkpoint_path, "dataset": train_split.dataset,
        "eval_augment": None if eval_augment is None else dataclasses.asdict(eval_augment)})
    experiment.say(f"SavedModel: {export_dir}")


def run(experiment_config):
    """Runs the config's mode; raises `ConfigError` (and friends) on bad input.

    Args:
        experiment_config: A `config.ExperimentConfig` with `runtime.model_dir` set.
    """
    _require_model_dir(experiment_config)
    load_libraries()
    runtime = experiment_config.runtime
    exporting = runtime.mode in ("train", "train_and_eval", "export")
    mg.configure_tensorflow()  # this program owns the process: see its docstring
    _STATE["config"] = experiment_config
    experiment = prepare(experiment_config)
    _STATE["experiment"] = experiment
    lock = None
    # A read-only model_dir (evaluated or exported elsewhere) gets no lock:
    # nothing is written into it.
    if experiment.role.is_chief and experiment.model_dir_problem is None:
        # A second live run in the same model_dir would overwrite this one's
        # checkpoints and double its TensorBoard curves.
        try:
            lock = files.RunLock(runtime.model_dir).acquire()
        except files.RunLockedError as error:
            raise ConfigError(f"--model_dir={runtime.model_dir}: {error}") from None
        if lock.stale_owner:
            experiment.say(f"Replaced a stale lock of a run that no longer runs "
                           f"({lock.stale_owner}).")
    model = experiment_config.model
    try:
        experiment.say(
            f"{model.learner.name} on {experiment_config.data.dataset} "
            f"({_episode_text(experiment)}), MGAug {model.mgaug.strategy}, "
            f"{experiment.strategy.num_replicas_in_sync} replica(s) on "
            f"{experiment.role.num_workers} worker(s), model_dir {runtime.model_dir}")
        if experiment.cross_domain is not None:
            experiment.say(_conversion_text(experiment.cross_domain))
        if _training(experiment_config):
            train(experiment)
            distribute.barrier(experiment.strategy)  # the chief's last saves are complete
        checkpoint_path = experiment.checkpoints.restore_model(
            checkpoints.BEST if experiment_config.trainer.use_best_checkpoint
            else checkpoints.LATEST)
        if _evaluating(experiment_config):
            evaluate(experiment, checkpoint_path)
        if exporting and experiment.role.is_chief:
            export_model(experiment, checkpoint_path)
    finally:
        if lock is not None:
            lock.release()


def _require_model_dir(experiment_config):
    if not experiment_config.runtime.model_dir:
        raise ConfigError("--model_dir is required: the run's folder (checkpoints, summaries, "
                          "results).")


def run_and_report(experiment_config):
    """`run`, with every failure turned into one message and the exit code of docs/cli.md."""
    load_libraries()  # for the errors named below
    model_dir = experiment_config.runtime.model_dir
    try:
        with _WATCHDOG.graceful():
            run(experiment_config)
    except (ConfigError, distribute.DistributionError) as error:
        _fail(str(error), error=error)
    except checkpoints.CheckpointError as error:
        _fail(f"{error} Use the flags of the run that wrote --model_dir={model_dir} "
              "(its flags.cfg) or a new --model_dir.", error=error)
    except trainer.NonFiniteError as error:
        _fail(str(error), EXIT_NON_FINITE, error=error)
    except (data.CorruptDataError, data.DataNotFoundError) as error:
        # Raised inside the input pipeline mid-run (a file the pre-flight
        # check could not catch, or one changed since).
        latest, _ = _latest_step(model_dir)
        kept = (f"The last checkpoint, {latest}, is intact; rerun the same command to resume "
                "from it." if latest else "No checkpoint had been written yet.")
        _fail(f"{error} Replace or remove the file (--verify_images lists every unreadable "
              f"image before training). {kept}", error=error)
    except KeyboardInterrupt as error:
        _FAILURES.append(error)
        interrupt.claim_exit()
        print(f"\n{_interrupted_message()}", file=sys.stderr, flush=True)
        sys.exit(interrupt.EXIT_INTERRUPTED)
    except Exception as error:  # pylint: disable=broad-except
        full = files.disk_full_path(error)
        if full is not None:
            _fail(_disk_full_message(full, model_dir), error=error)
        # Unexpected (a bug, a file corrupted mid-run): the traceback matters.
        traceback.print_exc()
        _fail(f"{type(error).__name__}; see the traceback above.", 1, error=error)


def _disk_full_message(path, model_dir):
    """One line for a write that failed on a full disk: the file, and what is intact."""
    latest, step = _latest_step(model_dir)
    kept = (f"The last complete checkpoint, {latest} (step {step}), is "
            "intact: free space on that disk and rerun the same command to resume from it."
            if latest else "No checkpoint had been written yet: free space on that disk and "
            "rerun the same command.")
    return f"{files.NO_SPACE}: cannot write {path or 'a file'}. {kept}"


def _parse_flags(argv):
    """absl's flag parser: the flags, then the config's checks, before TensorFlow is imported.

    Returns the checked `ExperimentConfig` (absl passes it to `_main`); a
    refused flag or value ends the process with one line and exit code 2.
    """
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))
    if len(rest) > 1:
        _fail(f"unexpected arguments {rest[1:]}; flags look like --name=value.")
    try:
        experiment_config = _with_saved_settings(run_flags.config_from_flags())
        _require_model_dir(experiment_config)
        checks.check_config(experiment_config)
    except ConfigError as error:
        _fail(str(error), error=error)
    except config_lib.ConfigFieldError as error:
        _fail(f"{run_flags.describe(error.paths, experiment_config)}: {error.message}")
    load_libraries()  # the dataset table needs TensorFlow
    try:
        run_flags.check_dataset(experiment_config.data.dataset)
        _check_test_dataset(experiment_config)
    except flags.ValidationError as error:
        _fail(str(error))
    except ConfigError as error:
        _fail(str(error), error=error)
    return experiment_config


def _main(experiment_config):
    """absl's main: the run of the config `_parse_flags` checked (which loaded the libraries)."""
    # absl's own --verbosity (not a config field): TensorFlow's INFO lines
    # would bury the progress bar unless the user asked for them.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("WARNING")
    run_and_report(experiment_config)


def _with_saved_settings(experiment_config):
    """For --mode=eval and export: the run's own config, with the flags given replacing its values.

    So `--mode=eval --model_dir=runs/x` evaluates the run as it was trained;
    a model setting given that differs from the run's is refused by `prepare`.
    The runtime section (devices, strategy, export folder) is this
    invocation's own: the run may have trained elsewhere.
    """
    runtime = experiment_config.runtime
    if runtime.mode not in ("eval", "export") or not runtime.model_dir:
        return experiment_config
    saved = saved_config(runtime.model_dir)
    if saved is None:
        return experiment_config
    base = dataclasses.replace(saved, runtime=config_lib.RuntimeConfig())
    return run_flags.config_from_flags(base=base)


# Errors of this process are kept alive until it ends, because their frames
# hold the run's tf.data iterators and TensorFlow 2.21 can block forever
# destroying an iterator whose pipeline failed; `_exit_now` ends the process
# without that teardown.
_FAILURES = []
_STATE = {}


def _fail(message, code=EXIT_USAGE, error=None):
    interrupt.claim_exit()  # this line is the process's last word, not the watchdog's
    if error is not None:
        _FAILURES.append(error)
    # Once a run has started, a progress bar may have left its line open.
    start = "\n" if _STATE.get("config") is not None else ""
    print(f"{start}{quiet.program_name()}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _exit_now(code):
    """Ends the process with `code` without destroying TensorFlow objects (see `_FAILURES`).

    Everything the run wrote is complete by now: checkpoints and JSON files
    are written synchronously; summaries and the standard streams are flushed
    here. Skipping the interpreter's teardown is what guarantees that no
    error path leaves the process running.
    """
    interrupt.claim_exit()
    experiment = _STATE.get("experiment")
    try:
        if experiment is not None:
            experiment.summaries.flush()
    except Exception:  # pylint: disable=broad-except  # exiting anyway
        pass
    logging.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr, flush=True)
        code = 1
    os._exit(0 if code is None else int(code))  # pylint: disable=protected-access


def entry_point(argv):
    """`mgaug-train ...`: help, flagfiles, then the run; never returns."""
    if not _WATCHDOG.installed:
        _WATCHDOG.install()  # Ctrl-C ends the process within seconds (`interrupt`)
    if any(arg in run_flags.HELP_ARGUMENTS for arg in argv[1:]):
        print(run_flags.help_text(__doc__))
        _exit_now(0)
    if any(arg in run_flags.HELPFULL_ARGUMENTS for arg in argv[1:]):
        print(run_flags.help_text(__doc__, full=True))
        _exit_now(0)
    try:
        argv = argv[:1] + run_flags.expand_flagfiles(argv[1:])
    except run_flags.FlagfileError as error:
        print(f"{quiet.program_name()}: error: {error}", file=sys.stderr)
        _exit_now(EXIT_USAGE)
    try:
        app.run(_main, argv=argv, flags_parser=_parse_flags)
    except SystemExit as done:
        _exit_now(done.code)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        _exit_now(1)
    _exit_now(0)


def main():
    """The `mgaug-train` console script."""
    entry_point(sys.argv)


if __name__ == "__main__":
    main()
