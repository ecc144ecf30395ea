"""Every flag of `trainers/run.py`, with the checks that need no data.

Flags come from the command line and from `--flagfile` config files (one
`--name=value` per line; lines starting with `#` or `//` are comments; a
later value overrides an earlier one, so command-line flags given after
`--flagfile` override the file).
"""

import os

from absl import flags

from mgaug_tf import distribute

LEARNERS = ("maml", "fomaml", "anil", "metasgd", "protonet")
MGAUG_STRATEGIES = ("none", "random_width", "random_param", "catfish", "snip")
MODES = ("train", "eval", "train_and_eval", "export")

# Flags that define the model and its training episodes: a run resumed in
# the same model_dir must keep them (run.py checks). Learning rates, step
# counts and evaluation settings may change between restarts (e.g. a lower
# --outer_lr after a NaN).
MODEL_FLAGS = ("dataset", "train_split", "image_size", "augment", "backbone", "filters",
               "pooling", "learner", "n_way", "k_shot", "k_query", "meta_batch_size",
               "inner_steps", "bn_mode", "task_reduction", "mgaug", "num_subnets", "keep_min",
               "keep_max", "mgaug_reduction", "resolutions", "mgaug_parity", "mgaug_resize",
               "mgaug_flatten_head", "outer_optimizer", "seed", "max_train_classes",
               "train_classes_seed")
# The flags that define the MGAug object (`build_augmentation`); the
# benchmark takes the same ones (`add_mgaug_arguments`).
MGAUG_FLAGS = ("mgaug", "num_subnets", "keep_min", "keep_max", "mgaug_reduction", "resolutions",
               "mgaug_parity", "mgaug_resize", "mgaug_flatten_head", "mgaug_width_execution")
# Both backbones halve the image four times (2x2 max-pools).
MIN_RESOLUTION = 16

# --- data
flags.DEFINE_string("dataset", "glyphs", "Dataset name: tieredimagenet, miniimagenet, omniglot, "
                    "cub, cifar_fs, fc100, or glyphs (built-in, needs no files); or tfds:NAME "
                    "(omniglot, cifar_fs, fc100, cub, mini_imagenet, tiered_imagenet) to read "
                    "data prepared by TensorFlow Datasets, offline.")
flags.DEFINE_string("data_dir", None, "Folder holding the dataset's files (see docs/data.md); "
                    "not used by glyphs. For tfds:NAME, the TFDS data_dir (default: "
                    "$TFDS_DATA_DIR or ~/tensorflow_datasets).")


def _check_dataset(name):
    """Unknown --dataset names fail at flag parsing, listing the known ones."""
    from mgaug_tf.data.load import check_dataset_name
    try:
        check_dataset_name(name)
    except ValueError as error:
        raise flags.ValidationError(f"--dataset={name}: {error}") from None
    return True


flags.register_validator("dataset", _check_dataset)
flags.DEFINE_string("train_split", "train", "Split meta-trained on.")
flags.DEFINE_string("val_split", "val", "Split validated on every --eval_every steps (best "
                    "checkpoint).")
flags.DEFINE_string("eval_split", "test", "Split of the final evaluation (--mode=eval, "
                    "train_and_eval).")
flags.DEFINE_integer("max_train_classes", None, "Meta-train on this many source classes of "
                     "--train_split drawn at random (Omniglot: characters, each kept in all its "
                     "rotations), for task-scarcity studies; default: all.", lower_bound=1)
flags.DEFINE_integer("train_classes_seed", 0, "Seed of the --max_train_classes draw (kept "
                     "apart from --seed, so runs of several seeds share one class subset).")
flags.DEFINE_integer("image_size", None, "Image height and width fed to the network (default: "
                     "the dataset's own size).", lower_bound=8)
flags.DEFINE_enum("augment", "auto", ["auto", "on", "off"], "Training augmentation: auto = on "
                  "for natural images, off for Omniglot and glyphs.")
flags.DEFINE_bool("check_image_files", True, "Before any work, check that every encoded image "
                  "of the chosen splits is non-empty and starts with a JPEG/PNG signature, and "
                  "list every one that fails (1-6 s per 50,000 files; truncated images pass: "
                  "see --verify_images).")
flags.DEFINE_bool("verify_images", False, "Before any work, decode every image of the chosen "
                  "splits (in parallel, with a progress bar) and list every undecodable one; "
                  "seconds for miniImageNet, minutes for tieredImageNet.")

# --- model
flags.DEFINE_enum("backbone", "conv4", ["conv4", "resnet12"], "Backbone network.")
flags.DEFINE_list("filters", ["32"], "conv4: filters per convolution (one value); resnet12: "
                  "four stage widths, or one base width w giving (w, 2.5w, 5w, 10w).")
flags.DEFINE_enum("pooling", None, ["flatten", "avg"], "Feature pooling (default: flatten for "
                  "conv4, avg for resnet12); MGAug resolutions need avg.")
flags.DEFINE_enum("dtype", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Compute precision: mixed_bfloat16 runs the network in bfloat16 with float32 "
                  "weights, batch-norm moments and losses (faster on recent accelerators); "
                  "mixed_float16 likewise in float16 (GPUs before Ampere), with dynamic loss "
                  "scaling of the meta-loss.")
flags.DEFINE_enum("learner", "maml", LEARNERS, "Meta-learner.")
flags.DEFINE_integer("n_way", 5, "Classes per episode.", lower_bound=2)
flags.DEFINE_integer("k_shot", 1, "Support images per class.", lower_bound=1)
flags.DEFINE_integer("k_query", 15, "Query images per class.", lower_bound=1)
flags.DEFINE_integer("eval_k_query", None, "Query images per class in validation and evaluation "
                     "episodes (default: --k_query). Finn et al. trained Omniglot MAML with 1 "
                     "query per class and tested with more.", lower_bound=1)
flags.DEFINE_integer("meta_batch_size", 4, "Tasks per meta-step, over all replicas.",
                     lower_bound=1)
flags.DEFINE_float("inner_lr", 0.01, "Inner-loop learning rate (Meta-SGD: initial value).")
flags.DEFINE_integer("inner_steps", 5, "Inner steps in training.", lower_bound=1)
flags.DEFINE_integer("eval_inner_steps", None, "Inner steps at evaluation and in the export "
                     "(default: --inner_steps).", lower_bound=0)
# Removed flags, still defined so that an old command or a run's flags.cfg
# (which lists every flag, e.g. `--novectorize`) gets a clear answer: the old
# default parses and changes nothing, any other value is refused at parsing
# with the reason. Left out of --help, flags.cfg and the run's JSON.
REMOVED_FLAGS = ("vectorize",)
flags.DEFINE_bool("vectorize", False, "Removed (issue 13); see docs/performance.md.")
flags.register_validator(
    "vectorize", lambda value: not value,
    "--vectorize was removed (issue 13): the vectorized path (tasks and MGAug sub-networks as "
    "grouped convolutions) was 1.14-1.20x slower than the per-task path in every configuration "
    "measured on this project's CPU and held 2.3-4x its memory at 84 px (docs/performance.md, "
    "'Decision: removed'). Drop the flag: every run takes the per-task path, which computes "
    "the same meta-gradients.")
flags.DEFINE_bool("recompute", False, "MAML, FOMAML, Meta-SGD, ANIL: recompute inner steps in the "
                  "backward pass instead of storing them (second-order MAML with ResNet-12 in "
                  "less memory, for ~1 more support pass per inner step).")
flags.DEFINE_enum("bn_mode", "transductive", ["transductive", "inductive"], "Test-time batch "
                  "norm: batch statistics (transductive) or moving statistics (inductive).")
flags.DEFINE_enum("task_reduction", "sum", ["sum", "mean"], "Meta-gradient over the tasks of "
                  "a meta-batch: sum (reference code) or mean.")

# --- MGAug
flags.DEFINE_enum("mgaug", "none", MGAUG_STRATEGIES, "Meta-gradient augmentation strategy.")
flags.DEFINE_integer("num_subnets", 3, "MGAug sub-networks per task (K).", lower_bound=1)
flags.DEFINE_float("keep_min", 0.8, "Smallest keep ratio of a sub-network, in (0, 1].")
flags.DEFINE_float("keep_max", 1.0, "Largest keep ratio of a sub-network, in (0, 1].")
flags.DEFINE_enum("mgaug_reduction", "sum", ["sum", "mean", "maxup"], "How sub-network "
                  "meta-gradients join the full network's.")
flags.DEFINE_list("resolutions", [], "Optional image sizes for the sub-networks' inputs, one "
                  "drawn per sub-network (the released runs: 84,64,48 at 84 px); each between "
                  "16 px and the image size. With a flatten head (conv4's default) it needs "
                  "--mgaug_flatten_head or --mgaug_parity (or --pooling=avg); ProtoNet takes any.")
flags.DEFINE_bool("mgaug_parity", False, "Reproduce the MGAug reference code's quirks "
                  "(k-1 pruned entries, accumulated scores, 0.999 keep cap) and its "
                  "multi-resolution rules (--mgaug_resize=align_corners, "
                  "--mgaug_flatten_head=reference).")
flags.DEFINE_enum("mgaug_resize", "align_corners", ["align_corners", "half_pixel"], "Bilinear "
                  "resize of the sub-networks' images to --resolutions: align_corners (the "
                  "reference code's, PyTorch align_corners=True) or half_pixel "
                  "(tf.image.resize).")
flags.DEFINE_enum("mgaug_flatten_head", "none", ["none", "reference", "resize_features"],
                  "How a flatten head serves sub-networks at smaller --resolutions: reference "
                  "(the reference code: the head kernel rows whose channels-first flatten index "
                  "is below the shorter feature length), resize_features (resize the last "
                  "feature map to the full grid; not in the reference) or none (refuse).")
flags.DEFINE_enum("mgaug_width_execution", "auto", ["auto", "sliced", "masked"],
                  "How random_width sub-networks run: sliced (convolutions on the kept "
                  "channels only, about r^2 of the FLOPs), masked (full width, channel masks "
                  "multiplied in; the same function) or auto (sliced where it applies and pays: "
                  "conv4, no XLA, keep ratios <= 0.5; masked otherwise). Not a model flag: a "
                  "resumed run may change it.")

# --- optimisation and schedule
flags.DEFINE_enum("outer_optimizer", "adam", ["adam", "sgd"], "Outer-loop optimizer.")
flags.DEFINE_float("outer_lr", 1e-3, "Outer-loop learning rate.")
flags.DEFINE_float("outer_momentum", 0.0, "Momentum of --outer_optimizer=sgd.", lower_bound=0.0)
flags.DEFINE_integer("outer_lr_decay_steps", 0, "Multiply --outer_lr by --outer_lr_decay_rate every "
                     "this many meta-steps (staircase); 0 keeps it constant. Snell et al. halve "
                     "it every 2,000 episodes.", lower_bound=0)
flags.DEFINE_float("outer_lr_decay_rate", 0.5, "Factor of each --outer_lr_decay_steps decay, in "
                   "(0, 1].", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("train_steps", 60000, "Meta-steps to train for.", lower_bound=1)
flags.DEFINE_integer("eval_every", 1000, "Validation interval in meta-steps.", lower_bound=1)
flags.DEFINE_integer("val_episodes", 600, "Episodes per validation.", lower_bound=1)
flags.DEFINE_integer("eval_episodes", 600, "Episodes of the final evaluation.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 500, "Checkpoint interval in meta-steps.",
                     lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "Latest checkpoints kept (the best is kept "
                     "separately).", lower_bound=1)
flags.DEFINE_integer("summary_every", 50, "TensorBoard summary interval in meta-steps.",
                     lower_bound=1)
flags.DEFINE_bool("use_best_checkpoint", True, "Evaluate and export the best checkpoint by "
                  "validation accuracy (else the latest).")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the training episodes and MGAug's masks.")
flags.DEFINE_integer("eval_seed", 0, "Seed of the validation and evaluation episodes.")
flags.DEFINE_bool("deterministic", True, "Deterministic TensorFlow ops (bit-exact reruns and "
                  "resumes; somewhat slower on GPU).")

# --- run
flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, TensorBoard summaries, flags, "
                    "results. Rerunning the same command resumes from it.")
flags.DEFINE_enum("mode", "train_and_eval", MODES, "train (then export), eval, train_and_eval "
                  "(train, evaluate, export) or export.")
flags.DEFINE_string("export_dir", None, "SavedModel folder (default: model_dir/export, "
                    "replaced by each export). Another folder must be empty or absent unless "
                    "--overwrite_export; it may not hold or be part of the model_dir's own files.")
flags.DEFINE_bool("overwrite_export", False, "Replace a non-empty --export_dir.")
flags.DEFINE_enum("strategy", "auto", distribute.STRATEGIES, "auto (mirrored when several "
                  "GPUs are visible), one_device, mirrored, or multi_worker (TF_CONFIG).")
flags.DEFINE_integer("cpu_devices", None, "Split the CPU into this many logical devices (to "
                     "run --strategy=mirrored without GPUs).", lower_bound=1)


def _positive_list(values):
    try:
        return all(int(value) > 0 for value in values)
    except ValueError:
        return False


flags.register_validator("keep_min", lambda value: 0.0 < value <= 1.0,
                         "--keep_min must be a keep ratio in (0, 1].")
flags.register_validator("keep_max", lambda value: 0.0 < value <= 1.0,
                         "--keep_max must be a keep ratio in (0, 1].")
flags.register_multi_flags_validator(
    ["keep_min", "keep_max"], lambda values: values["keep_min"] <= values["keep_max"],
    "--keep_min must not exceed --keep_max.")
flags.register_validator("inner_lr", lambda value: value > 0, "--inner_lr must be positive.")
flags.register_validator("outer_lr", lambda value: value > 0, "--outer_lr must be positive.")
flags.register_validator("filters", _positive_list,
                         "--filters must be positive integers (e.g. 32, or 64,160,320,640).")
flags.register_validator("resolutions", _positive_list,
                         "--resolutions must be positive image sizes (e.g. 64,72,84).")
flags.register_multi_flags_validator(
    ["backbone", "filters"],
    lambda values: len(values["filters"]) == 1 or (values["backbone"] == "resnet12"
                                                   and len(values["filters"]) == 4),
    "--filters takes one value for conv4, one or four for resnet12.")
def _check_flatten_head(values):
    pooling = values["pooling"] or ("avg" if values["backbone"] == "resnet12" else "flatten")
    if (not values["resolutions"] or values["learner"] == "protonet" or pooling == "avg"
            or values["mgaug_flatten_head"] != "none" or values["mgaug_parity"]):
        return True
    raise flags.ValidationError(
        f"--resolutions={','.join(values['resolutions'])} with a flatten head "
        f"(--pooling={pooling}, --learner={values['learner']}): the head's input length changes "
        "with the image size. Add --mgaug_flatten_head=reference (the reference code's rule; "
        "--mgaug_parity implies it) or --mgaug_flatten_head=resize_features, or use "
        "--pooling=avg (ProtoNet accepts any).")


flags.register_multi_flags_validator(
    ["resolutions", "pooling", "learner", "backbone", "mgaug_flatten_head", "mgaug_parity"],
    _check_flatten_head)
flags.register_multi_flags_validator(
    ["mgaug_parity", "mgaug_resize", "mgaug_flatten_head"],
    lambda values: not values["mgaug_parity"] or (
        values["mgaug_resize"] == "align_corners"
        and values["mgaug_flatten_head"] in ("none", "reference")),
    "--mgaug_parity reproduces the reference code: it needs --mgaug_resize=align_corners and "
    "--mgaug_flatten_head=reference (or none, which it implies).")


def build_augmentation(values, image_size, seed=0):
    """The `MGAug` that the MGAug flags describe, or `None` for --mgaug=none.

    The one place that turns flags into an `MGAug`: `trainers/run.py` passes
    its parsed flags, `benchmarks/meta_step.py` its arguments of the same
    names (`add_mgaug_arguments`).

    Args:
        values: An object with the attributes named in `MGAUG_FLAGS` (absl's
            `FLAGS`, an `argparse.Namespace`), with the flags' value types.
        image_size: The input images' size in pixels.
        seed: Base seed of MGAug's draws (`--seed`).

    Returns:
        An `mgaug_tf.MGAug` or `None`.

    Raises:
        ValueError: Naming the flag and value: --resolutions above the image
            size or below `MIN_RESOLUTION` (an empty feature map), or values
            the MGAug constructor refuses.
    """
    import mgaug_tf as mg  # pylint: disable=import-outside-toplevel

    if values.mgaug == "none":
        return None
    sizes = [int(size) for size in values.resolutions]
    listed = ",".join(str(size) for size in sizes)
    too_large = [size for size in sizes if size > image_size]
    if too_large:
        raise ValueError(f"--resolutions={listed}: {too_large} px exceed the {image_size} px "
                         "images (--image_size); sub-networks only downscale.")
    too_small = [size for size in sizes if size < MIN_RESOLUTION]
    if too_small:
        raise ValueError(f"--resolutions={listed}: {too_small} px leave an empty feature map "
                         f"(conv4 and resnet12 halve the image four times: at least "
                         f"{MIN_RESOLUTION} px).")
    if not 0.0 < values.keep_min <= values.keep_max <= 1.0:
        raise ValueError(f"--keep_min={values.keep_min} --keep_max={values.keep_max}: keep "
                         "ratios must satisfy 0 < keep_min <= keep_max <= 1.")
    if values.mgaug_parity and (values.mgaug_resize != "align_corners"
                                or values.mgaug_flatten_head == "resize_features"):
        raise ValueError(f"--mgaug_parity with --mgaug_resize={values.mgaug_resize} "
                         f"--mgaug_flatten_head={values.mgaug_flatten_head}: parity needs the "
                         "reference's align_corners and reference rules.")
    return mg.MGAug(values.mgaug, num_subnets=int(values.num_subnets),
                    keep_range=(values.keep_min, values.keep_max),
                    reduction=values.mgaug_reduction, resolutions=sizes or None,
                    image_size=image_size, parity=bool(values.mgaug_parity), seed=seed,
                    resize_method=values.mgaug_resize,
                    flatten_head=(None if values.mgaug_flatten_head == "none"
                                  else values.mgaug_flatten_head),
                    width_execution=getattr(values, "mgaug_width_execution", "auto"))


def add_mgaug_arguments(parser):
    """Adds the `MGAUG_FLAGS` to an `argparse` parser: same names, defaults, choices, help.

    For scripts that do not parse absl flags (the benchmark) but must build
    MGAug exactly as `trainers/run.py` does (`build_augmentation`).
    """
    for name in MGAUG_FLAGS:
        flag = flags.FLAGS[name]
        help_text = flag.help + f" (default: {flag.serialize() or '--' + name + '='})"
        if isinstance(flag.default, bool):
            parser.add_argument(f"--{name}", action="store_true", default=flag.default,
                                help=help_text)
        elif isinstance(flag.default, list):
            parser.add_argument(f"--{name}", default=list(flag.default), help=help_text,
                                type=lambda text: [part for part in text.split(",") if part])
        else:
            choices = getattr(flag.parser, "enum_values", None)
            parser.add_argument(f"--{name}", default=flag.default, type=type(flag.default),
                                choices=choices, help=help_text)


def model_dir_flag_values(flag_values):
    """`{name: serialized value}` of the `MODEL_FLAGS` (for comparing runs)."""
    return {name: flag_values[name].serialize() for name in MODEL_FLAGS}


def _own_flags(flag_values):
    return sorted((flag for flag in flag_values.get_flags_for_module(__name__)
                   if flag.name not in REMOVED_FLAGS), key=lambda flag: flag.name)


def flagfile_text(flag_values):
    """The flags defined here with their resolved values, as a flagfile."""
    lines = ["# Resolved flags of this run; reproduce it with",
             "#   python trainers/run.py --flagfile=<this file>"]
    lines += [flag.serialize() for flag in _own_flags(flag_values) if flag.value is not None]
    return "\n".join(lines) + "\n"


def flag_dict(flag_values):
    """`{name: value}` of the flags defined here (JSON-ready)."""
    return {flag.name: flag.value for flag in _own_flags(flag_values)}


# The groups of `--help`, as docs/cli.md groups the flags. Flags defined in
# this module but in no group are listed under "other".
HELP_GROUPS = (
    ("data", ("dataset", "data_dir", "train_split", "val_split", "eval_split", "image_size",
              "augment", "max_train_classes", "train_classes_seed", "check_image_files",
              "verify_images")),
    ("model", ("backbone", "filters", "pooling", "dtype", "learner", "n_way", "k_shot",
               "k_query", "eval_k_query", "meta_batch_size", "inner_lr", "inner_steps",
               "eval_inner_steps", "bn_mode", "task_reduction", "recompute")),
    ("MGAug", ("mgaug", "num_subnets", "keep_min", "keep_max", "mgaug_reduction", "resolutions",
               "mgaug_resize", "mgaug_flatten_head", "mgaug_parity", "mgaug_width_execution")),
    ("optimisation", ("outer_optimizer", "outer_lr", "outer_lr_decay_steps",
                      "outer_lr_decay_rate", "outer_momentum", "train_steps", "seed")),
    ("loop", ("eval_every", "val_episodes", "eval_episodes", "eval_seed", "checkpoint_every",
              "keep_checkpoints", "summary_every", "use_best_checkpoint", "deterministic")),
    ("run", ("model_dir", "mode", "export_dir", "overwrite_export", "strategy", "cpu_devices")),
)

HELP_ARGUMENTS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")


def help_text(flag_values, usage=""):
    """`--help` / `--helpshort`: `usage`, then this module's flags in `HELP_GROUPS`."""
    own = {flag.name: flag for flag in _own_flags(flag_values)}
    grouped = [(group, [own.pop(name) for name in names if name in own])
               for group, names in HELP_GROUPS]
    if own:
        grouped.append(("other", sorted(own.values(), key=lambda flag: flag.name)))
    lines = [usage.strip(), ""] if usage.strip() else []
    for group, group_flags in grouped:
        lines.append(f"{group}:")
        for flag in group_flags:
            name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
            lines.append(flags.text_wrap(f"{name}: {flag.help}", indent="      ",
                                         firstline_indent="  "))
            if flag.default is not None and flag.default != []:
                lines.append(f"      (default: {flag.default_as_str})")
        lines.append("")
    lines.append("--flagfile=FILE reads flags from FILE (one per line); --helpfull also lists "
                 "absl's and TensorFlow's flags.")
    return "\n".join(lines)


class FlagfileError(ValueError):
    """A --flagfile (or a file it includes) cannot be found or read."""


def _flagfile_path(name, including):
    """Where `--flagfile=name` points: tried in the order absl would, then beside the includer."""
    path = os.path.expanduser(name)
    if os.path.isabs(path):
        return path, [path]
    tried = [os.path.abspath(path)]
    if including is not None:
        # Relative to the current folder (absl's rule), else to the including
        # file's folder or one of its parents (configs/x.cfg including
        # configs/y.cfg from anywhere).
        folder = os.path.dirname(os.path.abspath(including))
        while True:
            tried.append(os.path.join(folder, path))
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    for candidate in tried:
        if os.path.isfile(candidate):
            return candidate, tried
    return None, tried


def expand_flagfiles(args, _including=None, _depth=0):
    """`args` with every `--flagfile=FILE` replaced by FILE's flags, recursively.

    FILE is read as absl reads flagfiles (one flag per line, `#` and `//`
    comments). A relative FILE is looked up in the current folder first (as
    absl does), and for a file included by another config also beside the
    including file and in the folders above it, so configs that include
    each other work from any folder.

    Raises:
        FlagfileError: A FILE is not found (naming every place looked at and
            the including file) or includes itself.
    """
    expanded = []
    for arg in args:
        if not (arg.startswith("--flagfile=") or arg.startswith("-flagfile=")):
            expanded.append(arg)
            continue
        name = arg.split("=", 1)[1]
        path, tried = _flagfile_path(name, _including)
        where = f" (included by {_including})" if _including else ""
        if path is None:
            raise FlagfileError(f"--flagfile={name}{where} not found; looked at "
                                + ", ".join(dict.fromkeys(tried)) + ".")
        if _depth > 20:
            raise FlagfileError(f"--flagfile={name}{where}: flagfiles include each other in a "
                                "loop.")
        try:
            with open(path, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle]
        except OSError as error:
            raise FlagfileError(f"--flagfile={name}{where} cannot be read: {error}.") from None
        lines = [line for line in lines
                 if line and not line.startswith("#") and not line.startswith("//")]
        expanded.extend(expand_flagfiles(lines, path, _depth + 1))
    return expanded
