"""The typed experiment configuration: what a run is, as frozen dataclasses.

An `ExperimentConfig` holds every setting of a run in sections (data,
episodes, model = backbone + learner + MGAug, optimizer, trainer, runtime).
Each field carries its documentation and the command-line flag that sets it
in its metadata, so the flags, their `--help` groups, the resume check and
the flag named in an error message all derive from this one table
(`mgaug_tf_cli/flags.py` reads it). The configs are plain data: the library
constructors validate values, and `mgaug_tf.factory` turns a config into
objects.

Example:
    >>> import dataclasses
    >>> from mgaug_tf import config
    >>> experiment = config.ExperimentConfig()
    >>> model = dataclasses.replace(experiment.model, learner=config.LearnerConfig("fomaml"))
    >>> config.ExperimentConfig.from_json(experiment.to_json()) == experiment
    True
"""

import dataclasses
import json
import typing
from typing import Optional

from mgaug_tf import choices
from mgaug_tf.errors import ArgumentError

DTYPES = ("float32", "mixed_bfloat16", "mixed_float16")
AUGMENT_CHOICES = ("auto", "on", "off")
MODES = ("train", "eval", "train_and_eval", "export")
NO_MGAUG = "none"
NO_FLATTEN_HEAD = "none"


def _field(default, flag, doc, *, choices=None, fixed=False, lower_bound=None):
    """A config field with its flag, one-line doc and (for enums) allowed names.

    `fixed`: the value defines the model or its training episodes, so a run
    resumed in the same model_dir must keep it; other values (learning
    rates, step counts, evaluation settings) may change between restarts.
    `lower_bound` is part of the value's type (a count is a positive
    integer) and checked when the flag is parsed.
    """
    return dataclasses.field(default=default, metadata={
        "flag": flag, "doc": doc, "choices": choices, "fixed": fixed,
        "lower_bound": lower_bound})


class _Section:
    """Type checks, JSON round trip and dotted-path access shared by every section."""

    def __post_init__(self):
        # Values are checked against the annotations here (types only: their
        # domains are the library constructors'); lists become tuples so that
        # equal configs compare equal whatever built them.
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            kind = hints[item.name]
            if _is_tuple(kind) and isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, item.name, value)
            if not _matches(value, kind):
                raise ArgumentError(item.name, value, f"must be {_type_name(kind)}",
                                    owner=type(self).__name__)

    def to_dict(self):
        """The section as nested dicts of JSON values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values):
        """The section from `to_dict`'s output; missing keys keep their defaults.

        Raises:
            ValueError: A key that is not a field of the section, or a value of
                the wrong type (`ArgumentError`), naming it.
        """
        if not isinstance(values, dict):
            raise ArgumentError("values", values, "must be a JSON object (a dict) of "
                                f"{cls.__name__}'s fields", owner=cls.__name__)
        hints = typing.get_type_hints(cls)
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; expected some of "
                             f"{sorted(names)}.")
        kwargs = {}
        for name, value in values.items():
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, _Section):
                kwargs[name] = kind.from_dict(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The section from `to_json`'s text.

        Raises:
            ValueError: Text that is not JSON (`json.JSONDecodeError`), or as
                `from_dict`.
        """
        return cls.from_dict(json.loads(text))


def _matches(value, kind):
    """Whether `value` has the annotated type (an int is a float; a bool is not an int)."""
    if typing.get_origin(kind) is typing.Union:
        return any(_matches(value, option) for option in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if _is_tuple(kind):
        item = typing.get_args(kind)[0]
        return isinstance(value, tuple) and all(_matches(entry, item) for entry in value)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _type_name(kind):
    if typing.get_origin(kind) is typing.Union:
        return " or ".join(_type_name(option) for option in typing.get_args(kind))
    if kind is type(None):
        return "None"
    if _is_tuple(kind):
        return f"a tuple of {_type_name(typing.get_args(kind)[0]).split(' ', 1)[1]}s"
    names = {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _is_tuple(kind):
    return typing.get_origin(kind) is tuple


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Where the episodes' images come from (docs/data.md lists the formats)."""

    dataset: str = _field(
        "glyphs", "dataset", "Dataset name: tieredimagenet, miniimagenet, omniglot, cub, "
        "cifar_fs, fc100, or glyphs (built-in, needs no files); or tfds:NAME (omniglot, "
        "cifar_fs, fc100, cub, mini_imagenet, tiered_imagenet) to read data prepared by "
        "TensorFlow Datasets, offline; or your own data: folder (images in class folders) or "
        "arrays (examples of any shape in .npz files).", fixed=True)
    data_dir: Optional[str] = _field(
        None, "data_dir", "Folder holding the dataset's files (see docs/data.md); not used by "
        "glyphs. For tfds:NAME, the TFDS data_dir (default: $TFDS_DATA_DIR or "
        "~/tensorflow_datasets).")
    train_split: str = _field("train", "train_split", "Split meta-trained on.", fixed=True)
    val_split: str = _field("val", "val_split", "Split validated on every --eval_every steps "
                            "(best checkpoint).")
    eval_split: str = _field("test", "eval_split", "Split of the final evaluation "
                             "(--mode=eval, train_and_eval).")
    image_size: Optional[int] = _field(
        None, "image_size", "Image height and width fed to the network (default: the "
        "dataset's own size).", fixed=True)
    augment: str = _field("auto", "augment", "Training augmentation: auto = on for natural "
                          "images, off for Omniglot and glyphs.", choices=AUGMENT_CHOICES,
                          fixed=True)
    max_train_classes: Optional[int] = _field(
        None, "max_train_classes", "Meta-train on this many source classes of --train_split "
        "drawn at random (Omniglot: characters, each kept in all its rotations), for "
        "task-scarcity studies; default: all.", fixed=True, lower_bound=1)
    train_classes_seed: int = _field(
        0, "train_classes_seed", "Seed of the --max_train_classes draw (kept apart from "
        "--seed, so runs of several seeds share one class subset).", fixed=True)
    check_image_files: bool = _field(
        True, "check_image_files", "Before any work, check that every encoded image of the "
        "chosen splits is non-empty and starts with a JPEG, PNG, GIF, BMP or WebP signature, "
        "and list every one that fails (truncated images pass: see --verify_images).")
    verify_images: bool = _field(
        False, "verify_images", "Before any work, decode every image of the chosen splits (in "
        "parallel, with a progress bar) and list every undecodable one; it takes longer the "
        "more images a split has.")
    split_file: Optional[str] = _field(
        None, "split_file", "--dataset=folder or arrays with one folder of classes (or one "
        "data.npz): a JSON file {\"train\": [...], \"val\": [...], \"test\": [...]} of class "
        "names, a CSV file of class,split rows, or a folder holding CloserLook's base.json, "
        "val.json, novel.json (docs/data.md).", fixed=True)
    channels: Optional[int] = _field(
        None, "channels", "--dataset=folder: convert every image to 3 (RGB, the default) or 1 "
        "(grey) channels.", fixed=True)
    test_dataset: Optional[str] = _field(
        None, "test_dataset", "Cross-domain testing: the final evaluation (--mode=eval, "
        "train_and_eval) runs on this dataset's --eval_split instead of --dataset's (any "
        "--dataset name), its images read at the training image size and converted to the "
        "training channels (grey -> RGB repeats, RGB -> grey is Pillow's luma); results in "
        "eval_<split>_<test_dataset>.json. Validation stays on --dataset.")
    test_data_dir: Optional[str] = _field(
        None, "test_data_dir", "Folder holding --test_dataset's files (as --data_dir holds "
        "--dataset's); not used by glyphs.")
    test_split_file: Optional[str] = _field(
        None, "test_split_file", "--test_dataset=folder with one folder of classes: its split "
        "file (as --split_file for --dataset), naming the classes of --eval_split.")


@dataclasses.dataclass(frozen=True)
class EpisodesConfig(_Section):
    """The shape of the episodes (the classes per episode are the learner's `n_way`)."""

    k_shot: int = _field(1, "k_shot", "Support images per class.", fixed=True, lower_bound=1)
    k_query: int = _field(15, "k_query", "Query images per class.", fixed=True, lower_bound=1)
    eval_k_query: Optional[int] = _field(
        None, "eval_k_query", "Query images per class in validation and evaluation episodes "
        "(default: --k_query). Finn et al. trained Omniglot MAML with 1 query per class and "
        "tested with more.", lower_bound=1)
    meta_batch_size: int = _field(4, "meta_batch_size", "Tasks per meta-step, over all "
                                  "replicas.", fixed=True, lower_bound=1)


@dataclasses.dataclass(frozen=True)
class BackboneConfig(_Section):
    """The feature extractor (`mgaug_tf.factory.build_backbone`)."""

    name: str = _field("conv4", "backbone", "Backbone network: a name in `mgaug_tf.registry` "
                       "(conv4, resnet12, resnet10, mlp, or one added with `register_backbone`).",
                       fixed=True)
    filters: tuple[int, ...] = _field(
        (32,), "filters", "conv4: filters per convolution (one value); resnet12: four stage "
        "widths, or one base width w giving (w, 2.5w, 5w, 10w); resnet10: four stage widths, "
        "or w giving (w, 2w, 4w, 8w) (64: the reference's).", fixed=True)
    pooling: Optional[str] = _field(
        None, "pooling", "Feature pooling (default: the backbone's own: flatten for conv4, avg "
        "for resnet12). With --resolutions, flatten needs --mgaug_flatten_head (or "
        "--mgaug_parity) except for ProtoNet; avg needs neither.",
        choices=choices.POOLINGS, fixed=True)
    dtype: str = _field(
        "float32", "dtype", "Compute precision: mixed_bfloat16 runs the network in bfloat16 "
        "with float32 weights, batch-norm moments and losses (faster on recent accelerators); "
        "mixed_float16 likewise in float16 (GPUs before Ampere), with dynamic loss scaling of "
        "the meta-loss.", choices=DTYPES)
    fused_batch_norm: str = _field(
        "auto", "fused_batch_norm", "conv4's batch norm: auto (TensorFlow's fused kernel in "
        "float32 and 16-bit, plain ops in float64), on (the same) or off (plain ops). The same "
        "function either way.",
        choices=("auto", "on", "off"))
    final_pool: Optional[str] = _field(
        None, "final_pool", "resnet10's last pooling (default: global): global (the average "
        "of the last map, any image size) or reference (the reference code's AvgPool2d(5): the "
        "top-left 5 x 5 of the 7 x 7 map at 224 px; images of 129 to 288 px).",
        choices=choices.FINAL_POOLS, fixed=True)
    hidden_units: tuple[int, ...] = _field(
        (), "hidden_units", "mlp: widths of its hidden Dense + ReLU layers, e.g. 40,40 (the "
        "default: Finn et al.'s sinusoid network); the other backbones take none.",
        fixed=True)


@dataclasses.dataclass(frozen=True)
class LearnerConfig(_Section):
    """The meta-learner (`mgaug_tf.factory.build_learner`)."""

    name: str = _field("maml", "learner", "Meta-learner: a name in `mgaug_tf.registry` (maml, "
                       "fomaml, anil, metasgd, protonet, or one added with "
                       "`register_learner`).", fixed=True)
    n_way: int = _field(5, "n_way", "Classes per episode.", fixed=True)
    inner_lr: float = _field(0.01, "inner_lr", "Inner-loop learning rate (Meta-SGD: initial "
                             "value).")
    inner_steps: int = _field(5, "inner_steps", "Inner steps in training.", fixed=True)
    eval_inner_steps: Optional[int] = _field(
        None, "eval_inner_steps", "Inner steps at evaluation and in the export (default: "
        "--inner_steps).")
    bn_mode: str = _field("transductive", "bn_mode", "Test-time batch norm: batch statistics "
                          "(transductive) or moving statistics (inductive).",
                          choices=choices.BN_MODES, fixed=True)
    task_reduction: str = _field("sum", "task_reduction", "Meta-gradient over the tasks of a "
                                 "meta-batch: sum (reference code) or mean.",
                                 choices=choices.TASK_REDUCTIONS, fixed=True)
    recompute: bool = _field(
        False, "recompute", "MAML, FOMAML, Meta-SGD, ANIL: recompute inner steps in the "
        "backward pass instead of storing them (second-order MAML with ResNet-12 in less "
        "memory, for about one more support pass per inner step).")
    log_before_adaptation: bool = _field(
        False, "log_before_adaptation", "MAML, FOMAML, Meta-SGD, ANIL: also log the query "
        "accuracy (regression: loss) before the inner loop each training step, for one more "
        "forward pass of each task's query set.")
    parallel_tasks: int = _field(
        1, "parallel_tasks", "Tasks of a meta-batch computed at once (same values; each task in "
        "flight holds its own graph in memory). Above 1 it speeds up small images, whose ops "
        "are too small to keep every core busy, most with --intra_op_threads=1.",
        lower_bound=1)


@dataclasses.dataclass(frozen=True)
class MGAugConfig(_Section):
    """Meta-gradient augmentation (`mgaug_tf.MGAug`); `strategy="none"` turns it off."""

    strategy: str = _field(NO_MGAUG, "mgaug", "Meta-gradient augmentation strategy.",
                           choices=(NO_MGAUG,) + choices.MGAUG_STRATEGIES, fixed=True)
    num_subnets: int = _field(3, "num_subnets", "MGAug sub-networks per task (K).", fixed=True)
    keep_min: float = _field(0.8, "keep_min", "Smallest keep ratio of a sub-network, in "
                             "(0, 1].", fixed=True)
    keep_max: float = _field(1.0, "keep_max", "Largest keep ratio of a sub-network, in "
                             "(0, 1].", fixed=True)
    reduction: str = _field("sum", "mgaug_reduction", "How sub-network meta-gradients join "
                            "the full network's.", choices=choices.MGAUG_REDUCTIONS, fixed=True)
    resolutions: tuple[int, ...] = _field(
        (), "resolutions", "Optional image sizes for the sub-networks' inputs, one drawn per "
        "sub-network (the released runs: 84,64,48 at 84 px); each between the backbone's "
        "smallest input and the image size. With a flatten head it needs "
        "--mgaug_flatten_head (or --mgaug_parity, or --pooling=avg); ProtoNet takes any.",
        fixed=True)
    parity: bool = _field(
        False, "mgaug_parity", "Reproduce the MGAug reference code's quirks (k-1 pruned "
        "entries, accumulated scores, 0.999 keep cap) and its multi-resolution rules "
        "(align_corners resize, reference flatten head).", fixed=True)
    resize: str = _field(
        "align_corners", "mgaug_resize", "Bilinear resize of the sub-networks' images to "
        "--resolutions: align_corners (the reference code's, PyTorch align_corners=True) or "
        "half_pixel (tf.image.resize).", choices=choices.RESIZE_METHODS, fixed=True)
    flatten_head: str = _field(
        NO_FLATTEN_HEAD, "mgaug_flatten_head", "How a flatten head serves sub-networks at "
        "smaller --resolutions: reference (the reference code: the head kernel rows whose "
        "channels-first flatten index is below the shorter feature length), resize_features "
        "(resize the last feature map to the full grid; not in the reference) or none "
        "(refuse). Backbones with averaged features (resnet10, resnet12, --pooling=avg) "
        "have no flatten head and take only none.",
        choices=(NO_FLATTEN_HEAD,) + choices.FLATTEN_HEADS, fixed=True)
    width_execution: str = _field(
        "auto", "mgaug_width_execution", "How random_width sub-networks run: sliced "
        "(convolutions on the kept channels only, about r^2 of the FLOPs), masked (full "
        "width, channel masks multiplied in; the same function) or auto (sliced where it "
        "applies and pays). A resumed run may change it.", choices=choices.WIDTH_EXECUTIONS)
    include_dense: bool = _field(
        False, "mgaug_include_dense", "random_param, catfish, snip: prune Dense kernels too "
        "(default: convolution kernels only). An MLP (--backbone=mlp) has only Dense "
        "kernels, so MGAug on it needs this.", fixed=True)

    @property
    def enabled(self):
        return self.strategy != NO_MGAUG


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """Everything `mgaug_tf.factory.build_learner` needs besides the image shape."""

    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
    mgaug: MGAugConfig = dataclasses.field(default_factory=MGAugConfig)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_Section):
    """The outer-loop optimizer (`mgaug_tf.factory.build_optimizer`)."""

    name: str = _field("adam", "outer_optimizer", "Outer-loop optimizer: adam or sgd.",
                       fixed=True)
    learning_rate: float = _field(1e-3, "outer_lr", "Outer-loop learning rate.")
    momentum: float = _field(0.0, "outer_momentum", "Momentum of --outer_optimizer=sgd, in "
                             "[0, 1].")
    decay_steps: int = _field(
        0, "outer_lr_decay_steps", "Multiply --outer_lr by --outer_lr_decay_rate every this "
        "many meta-steps (staircase); 0 keeps it constant. Snell et al. halve it every 2,000 "
        "episodes.", lower_bound=0)
    decay_rate: float = _field(0.5, "outer_lr_decay_rate", "Factor of each "
                               "--outer_lr_decay_steps decay, in (0, 1].")


@dataclasses.dataclass(frozen=True)
class TrainerConfig(_Section):
    """The training loop's cadence, seeds and evaluation."""

    train_steps: int = _field(60000, "train_steps", "Meta-steps to train for.", lower_bound=1)
    eval_every: int = _field(1000, "eval_every", "Validation interval in meta-steps.",
                             lower_bound=1)
    val_episodes: int = _field(600, "val_episodes", "Episodes per validation.", lower_bound=1)
    eval_episodes: int = _field(600, "eval_episodes", "Episodes of the final evaluation.",
                                lower_bound=1)
    checkpoint_every: int = _field(500, "checkpoint_every", "Checkpoint interval in "
                                   "meta-steps.", lower_bound=1)
    keep_checkpoints: int = _field(3, "keep_checkpoints", "Latest checkpoints kept (the best "
                                   "is kept separately).", lower_bound=1)
    summary_every: int = _field(50, "summary_every", "TensorBoard summary interval in "
                                "meta-steps.", lower_bound=1)
    use_best_checkpoint: bool = _field(True, "use_best_checkpoint", "Evaluate and export the "
                                       "best checkpoint by validation accuracy (else the "
                                       "latest).")
    seed: int = _field(0, "seed", "Seed of the weights, the training episodes and MGAug's "
                       "masks.", fixed=True)
    eval_seed: int = _field(0, "eval_seed", "Seed of the validation and evaluation episodes.")
    deterministic: bool = _field(True, "deterministic", "Deterministic TensorFlow ops "
                                 "(bit-exact reruns and resumes; somewhat slower on GPU).")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Section):
    """Where the run lives, what it does, and on which devices."""

    model_dir: Optional[str] = _field(None, "model_dir", "Run folder: checkpoints, "
                                      "TensorBoard summaries, config, results. Rerunning the "
                                      "same command resumes from it.")
    mode: str = _field("train_and_eval", "mode", "train (then export), eval, train_and_eval "
                       "(train, evaluate, export) or export.", choices=MODES)
    export_dir: Optional[str] = _field(
        None, "export_dir", "SavedModel folder (default: model_dir/export, replaced by each "
        "export). Another folder must be empty or absent unless --overwrite_export; it may not "
        "hold or be part of the model_dir's own files.")
    overwrite_export: bool = _field(False, "overwrite_export", "Replace a non-empty "
                                    "--export_dir.")
    strategy: str = _field("auto", "strategy", "auto (mirrored when several GPUs are "
                           "visible), one_device, mirrored, or multi_worker (TF_CONFIG).",
                           choices=choices.DISTRIBUTION_STRATEGIES)
    cpu_devices: Optional[int] = _field(None, "cpu_devices", "Split the CPU into this many "
                                        "logical devices (to run --strategy=mirrored without "
                                        "GPUs).")
    intra_op_threads: Optional[int] = _field(
        None, "intra_op_threads", "Threads one TensorFlow op may use (default: TensorFlow's "
        "choice, one per core). 1 suits small images with --parallel_tasks above 1: ops too "
        "small to split run whole, tasks side by side. Set for the whole process at its start.",
        lower_bound=1)
    check_memory: bool = _field(
        True, "check_memory", "Before building the meta-step, estimate its memory "
        "(mgaug_tf.memory) and refuse to train when the estimate exceeds the memory available; "
        "--nocheck_memory trains anyway.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(_Section):
    """A whole run: `mgaug-train` builds one from its flags (`config_from_flags`)."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    episodes: EpisodesConfig = dataclasses.field(default_factory=EpisodesConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


# ------------------------------------------------------------ the field table
@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One leaf setting of `ExperimentConfig`: its dotted path, flag and metadata."""

    path: str  # e.g. "model.mgaug.keep_min"
    flag: str  # e.g. "keep_min"
    doc: str
    type: object  # the annotation: int, float, bool, str, Optional[...], tuple[int, ...]
    default: object
    choices: Optional[tuple]
    fixed: bool
    lower_bound: object

    @property
    def section(self):
        """The innermost section's name ("mgaug", "data", ...)."""
        return self.path.rsplit(".", 1)[0].rsplit(".", 1)[-1]

    @property
    def base_type(self):
        """`int` for `Optional[int]`; the annotation itself otherwise."""
        if typing.get_origin(self.type) is typing.Union:
            return next(arg for arg in typing.get_args(self.type) if arg is not type(None))
        return self.type

    @property
    def is_list(self):
        """Whether the value is a tuple (a comma-separated list as a flag)."""
        return _is_tuple(self.base_type)


def field_specs(cls=ExperimentConfig, prefix=""):
    """Every leaf field of `cls`, depth first in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        path = f"{prefix}{item.name}"
        if isinstance(kind, type) and issubclass(kind, _Section):
            specs += field_specs(kind, path + ".")
            continue
        meta = item.metadata
        specs.append(FieldSpec(path=path, flag=meta["flag"], doc=meta["doc"], type=kind,
                               default=item.default, choices=meta["choices"],
                               fixed=meta["fixed"], lower_bound=meta["lower_bound"]))
    return specs


FIELDS = {spec.path: spec for spec in field_specs()}
FIELDS_BY_FLAG = {spec.flag: spec for spec in FIELDS.values()}


def get(config, path):
    """The value at a dotted `path` ("model.mgaug.keep_min") of a config."""
    value = config
    for name in path.split("."):
        value = getattr(value, name)
    return value


def override(config, values, _prefix=""):
    """`config` with the dotted paths of `values` replaced (`dataclasses.replace` per level).

    Args:
        config: A config section (usually an `ExperimentConfig`).
        values: `{dotted path: value}`; paths relative to `config`.

    Raises:
        ValueError: A path that names no field, or a value of the wrong type
            (`ArgumentError`).
    """
    nested, whole = {}, {}
    names = {item.name for item in dataclasses.fields(config)}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head not in names:
            raise ValueError(f"{type(config).__name__} has no field {head!r} (in "
                             f"{_prefix + path!r}); it has {sorted(names)}.")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            whole[head] = value
    both = sorted(set(nested) & set(whole))
    if both:
        raise ValueError(f"override sets {_prefix + both[0]!r} both whole and by its fields; "
                         "give one or the other.")
    changes = dict(whole)
    for name, fields in nested.items():
        if not isinstance(getattr(config, name), _Section):
            raise ValueError(f"{_prefix + name!r} is a value, not a section: it has no "
                             f"field {next(iter(fields))!r}.")
        changes[name] = override(getattr(config, name), fields, f"{_prefix}{name}.")
    return dataclasses.replace(config, **changes)


def differences(saved, current):
    """The fixed fields whose values differ: `[(FieldSpec, saved value, current value)]`.

    MGAug's settings other than its strategy count only where either config
    uses MGAug: with `strategy="none"` on both sides they change nothing.
    """
    mgaug_off = not saved.model.mgaug.enabled and not current.model.mgaug.enabled
    return [(spec, get(saved, spec.path), get(current, spec.path))
            for spec in FIELDS.values()
            if spec.fixed
            and not (mgaug_off and spec.path.startswith("model.mgaug.")
                     and spec.path != "model.mgaug.strategy")
            and get(saved, spec.path) != get(current, spec.path)]


class ConfigFieldError(ValueError):
    """A config value that a library constructor refused.

    Attributes:
        paths: The dotted `ExperimentConfig` paths of the fields that made
            the refused argument (e.g. ("model.mgaug.keep_min",
            "model.mgaug.keep_max") for MGAug's `keep_range`).
    """

    def __init__(self, paths, message):
        self.paths = tuple(paths)
        self.message = message  # the constructor's words, without the paths
        super().__init__(f"{', '.join(self.paths)}: {message}")
