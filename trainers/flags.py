"""Every flag of `trainers/run.py`, with the checks that need no data.

Flags come from the command line and from `--flagfile` config files (one
`--name=value` per line; lines starting with `#` or `//` are comments; a
later value overrides an earlier one, so command-line flags given after
`--flagfile` override the file).
"""

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
               "keep_max", "mgaug_reduction", "resolutions", "mgaug_parity", "outer_optimizer",
               "seed")

# --- data
flags.DEFINE_string("dataset", "glyphs", "Dataset name: tieredimagenet, miniimagenet, omniglot, "
                    "cub, cifar_fs, fc100, or glyphs (built-in, needs no files).")
flags.DEFINE_string("data_dir", None, "Folder holding the dataset's files (see docs/data.md); "
                    "not used by glyphs.")
flags.DEFINE_string("train_split", "train", "Split meta-trained on.")
flags.DEFINE_string("val_split", "val", "Split validated on every --eval_every steps (best "
                    "checkpoint).")
flags.DEFINE_string("eval_split", "test", "Split of the final evaluation (--mode=eval, "
                    "train_and_eval).")
flags.DEFINE_integer("image_size", None, "Image height and width fed to the network (default: "
                     "the dataset's own size).", lower_bound=8)
flags.DEFINE_enum("augment", "auto", ["auto", "on", "off"], "Training augmentation: auto = on "
                  "for natural images, off for Omniglot and glyphs.")

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
flags.DEFINE_bool("vectorize", False, "MAML, FOMAML, Meta-SGD: run the meta-batch's tasks and "
                  "their MGAug sub-networks as grouped convolutions instead of one after the "
                  "other (Conv4, transductive batch norm; docs/performance.md says when it pays).")
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
flags.DEFINE_list("resolutions", [], "Optional image sizes for the sub-networks' inputs (e.g. "
                  "64,72,84); needs --pooling=avg unless --learner=protonet.")
flags.DEFINE_bool("mgaug_parity", False, "Reproduce the MGAug reference code's quirks "
                  "(k-1 pruned entries, accumulated scores, 0.999 keep cap).")

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
flags.DEFINE_string("export_dir", None, "SavedModel folder (default: model_dir/export).")
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
flags.register_multi_flags_validator(
    ["resolutions", "pooling", "learner", "backbone"],
    lambda values: not values["resolutions"] or values["learner"] == "protonet"
    or (values["pooling"] or ("avg" if values["backbone"] == "resnet12" else "flatten")) == "avg",
    "--resolutions needs --pooling=avg: a flatten head's input length changes with the image "
    "size (ProtoNet accepts any).")


def model_dir_flag_values(flag_values):
    """`{name: serialized value}` of the `MODEL_FLAGS` (for comparing runs)."""
    return {name: flag_values[name].serialize() for name in MODEL_FLAGS}


def _own_flags(flag_values):
    return sorted(flag_values.get_flags_for_module(__name__), key=lambda flag: flag.name)


def flagfile_text(flag_values):
    """The flags defined here with their resolved values, as a flagfile."""
    lines = ["# Resolved flags of this run; reproduce it with",
             "#   python trainers/run.py --flagfile=<this file>"]
    lines += [flag.serialize() for flag in _own_flags(flag_values) if flag.value is not None]
    return "\n".join(lines) + "\n"


def flag_dict(flag_values):
    """`{name: value}` of the flags defined here (JSON-ready)."""
    return {flag.name: flag.value for flag in _own_flags(flag_values)}
