"""Meta-train, evaluate and export a few-shot learner.

    python trainers/run.py --flagfile=configs/demo.cfg
    python trainers/run.py --flagfile=configs/tiered.cfg --data_dir=/data/tiered \\
        --model_dir=runs/tiered
    tensorboard --logdir runs

Rerunning the same command resumes from the last checkpoint in --model_dir.
See docs/cli.md for the modes, configs, distribution and the SavedModel.
"""

import os
import shutil
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from trainers import quiet  # pylint: disable=wrong-import-position

quiet.configure()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import dataclasses

from absl import app
from absl import flags
from absl import logging

with quiet.native_stderr():
    import keras
    import tensorflow as tf

    import mgaug_tf as mg
    from mgaug_tf import data, distribute, export
    from mgaug_tf.data import preprocess
    from mgaug_tf.training import checkpoints, evaluation, files, inputs, summaries, trainer
    from trainers import flags as run_flags

    if __name__ == "__main__":
        # Finds the devices (cuInit) now, while the noise of a machine without a
        # GPU is filtered; later calls reuse the result.
        tf.config.list_physical_devices()

FLAGS = flags.FLAGS

EXIT_USAGE = 2  # bad flags, missing or unreadable data, unusable checkpoint
EXIT_NON_FINITE = 3  # NaN/Inf loss or weights


class ConfigError(Exception):
    """Bad flags or data: reported as one message, without a traceback."""


# ----------------------------------------------------------------- checks
def _check_model_dir():
    """Refuses to resume a run whose model-defining flags differ from these."""
    path = os.path.join(FLAGS.model_dir, "flags.cfg")
    if not os.path.exists(path) or tf.train.latest_checkpoint(FLAGS.model_dir) is None:
        return
    saved = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name = line[2:].split("=", 1)[0]
            if name not in FLAGS and name.startswith("no") and name[2:] in FLAGS:
                name = name[2:]
            saved[name] = line
    current = run_flags.model_dir_flag_values(FLAGS)
    changed = [f"{saved.get(name, f'(unset) --{name}')} there, {value} now"
               for name, value in current.items()
               if (FLAGS[name].value is not None or name in saved) and saved.get(name) != value]
    if changed:
        raise ConfigError(
            f"--model_dir={FLAGS.model_dir} holds checkpoints of a run with other model flags: "
            + "; ".join(changed) + f". Resume with that run's flags ({path}) or use a new "
            "--model_dir.")


def _load_split(split_flag):
    name = FLAGS[split_flag].value
    options = {"image_size": FLAGS.image_size} if FLAGS.image_size else {}
    try:
        split = data.load(FLAGS.dataset, FLAGS.data_dir, name, **options)
        if split_flag == "train_split" and FLAGS.max_train_classes:
            split = split.sample_source_classes(FLAGS.max_train_classes,
                                                FLAGS.train_classes_seed)
        return split
    except data.DataNotFoundError as error:
        raise ConfigError(f"--data_dir={FLAGS.data_dir}: {error}") from None
    except (data.CorruptDataError, ValueError) as error:
        limit = (f" --max_train_classes={FLAGS.max_train_classes}"
                 if split_flag == "train_split" and FLAGS.max_train_classes else "")
        raise ConfigError(f"--dataset={FLAGS.dataset} --{split_flag}={name}{limit}: "
                          f"{error}") from None


def _k_query(split_flag):
    """Query images per class of the episodes drawn from the split named by its flag."""
    if split_flag != "train_split" and FLAGS.eval_k_query is not None:
        return FLAGS.eval_k_query
    return FLAGS.k_query


def _check_episodes(split, split_flag):
    """n_way classes with k_shot + k_query images each must exist in the split."""
    where = f"{split.dataset} {split.split} (--{split_flag})"
    if FLAGS.n_way > split.num_classes:
        raise ConfigError(f"--n_way={FLAGS.n_way} is more than the {split.num_classes} classes "
                          f"of {where}.")
    k_query = _k_query(split_flag)
    query_flag = "k_query" if k_query == FLAGS.k_query else "eval_k_query"
    needed = FLAGS.k_shot + k_query
    eligible = int((split.class_sizes >= needed).sum())
    if eligible < FLAGS.n_way:
        raise ConfigError(
            f"--k_shot + --{query_flag} = {FLAGS.k_shot} + {k_query} = {needed} images per "
            f"class, but only {eligible} classes of {where} have that many (the largest has "
            f"{int(split.class_sizes.max())}); --n_way={FLAGS.n_way} needs {FLAGS.n_way}.")


MIN_IMAGE_SIZE = 16  # both backbones halve the image four times


def _check_image_size(image_shape):
    if image_shape[0] < MIN_IMAGE_SIZE:
        raise ConfigError(f"--image_size={image_shape[0]} is too small for {FLAGS.backbone} "
                          f"(four 2x2 poolings need at least {MIN_IMAGE_SIZE} px).")
    sizes = [int(size) for size in FLAGS.resolutions]
    if sizes and (max(sizes) > image_shape[0] or min(sizes) < MIN_IMAGE_SIZE):
        raise ConfigError(f"--resolutions={','.join(FLAGS.resolutions)} must lie between "
                          f"{MIN_IMAGE_SIZE} px and the {image_shape[0]} px images (sub-networks "
                          "only downscale).")


def _check_images(splits, say):
    """The pre-flight image check (--check_image_files, --verify_images) of the chosen splits.

    Raises:
        ConfigError: Listing every unreadable image found.
    """
    if not (FLAGS.check_image_files or FLAGS.verify_images):
        return
    problems, checked = [], set()
    for split_flag, split in splits.items():
        if FLAGS[split_flag].value in checked:
            continue
        checked.add(FLAGS[split_flag].value)
        progress = None
        if FLAGS.verify_images:
            total = int(split.class_sizes.sum())
            say(f"Decoding the {total} images of {split.dataset} {split.split} (--verify_images)")
            if say.enabled:
                bar = keras.utils.Progbar(total, unit_name="image",
                                          interval=0.5 if sys.stdout.isatty() else 30.0)
                progress = bar.update
        problems += split.check_images(decode=FLAGS.verify_images, progress=progress)
    if problems:
        how = ("decoded" if FLAGS.verify_images
               else "quick check of sizes and signatures, --check_image_files")
        raise ConfigError(
            f"{len(problems)} image(s) of the chosen splits cannot be read ({how}):\n  "
            + "\n  ".join(problems) + "\nReplace or remove these files (and their entries in "
            "the split's list) and rerun.")


def _export_dir():
    return FLAGS.export_dir or os.path.join(FLAGS.model_dir, "export")


RUN_ENTRIES = ("train", "val", "eval", checkpoints.BEST, "checkpoint", "flags.cfg",
               files.LOCK_FILE)


def _check_export_dir():
    """The export must not mix with other files or write over the model_dir's own."""
    export_dir = os.path.abspath(_export_dir())
    model_dir = os.path.abspath(FLAGS.model_dir)
    own_default = export_dir == os.path.join(model_dir, "export")
    name = os.path.basename(export_dir)
    if (export_dir == model_dir or model_dir.startswith(export_dir.rstrip(os.sep) + os.sep)
            or (os.path.dirname(export_dir) == model_dir
                and (name in RUN_ENTRIES or name.startswith(("ckpt-", "eval_"))))):
        raise ConfigError(f"--export_dir={FLAGS.export_dir} would write the SavedModel over the "
                          f"files of --model_dir={FLAGS.model_dir}; use a folder of its own "
                          "(default: model_dir/export).")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ConfigError(f"--export_dir={FLAGS.export_dir} is a file, not a folder.")
    if (not own_default and os.path.isdir(export_dir) and os.listdir(export_dir)
            and not FLAGS.overwrite_export):
        raise ConfigError(f"--export_dir={FLAGS.export_dir} is not empty; pass "
                          "--overwrite_export to replace its contents, or choose a new folder.")


# ----------------------------------------------------------------- builders
def _build_learner(image_shape):
    """The learner the flags describe, built for `image_shape`."""
    pooling = FLAGS.pooling or ("avg" if FLAGS.backbone == "resnet12" else "flatten")
    filters = [int(value) for value in FLAGS.filters]
    if FLAGS.backbone == "conv4":
        backbone = mg.get_backbone("conv4", filters=filters[0], pooling=pooling,
                                   dtype=FLAGS.dtype)
    else:
        widths = filters if len(filters) == 4 else [int(filters[0] * scale)
                                                    for scale in (1, 2.5, 5, 10)]
        backbone = mg.get_backbone("resnet12", widths=widths, pooling=pooling, dtype=FLAGS.dtype)
    augmentation = run_flags.build_augmentation(FLAGS, image_shape[0], seed=FLAGS.seed)
    common = {"bn_mode": FLAGS.bn_mode, "task_reduction": FLAGS.task_reduction,
              "augmentation": augmentation}
    if FLAGS.learner == "protonet":
        if FLAGS.recompute:
            raise ValueError("--recompute applies to the gradient-based learners "
                             "(ProtoNet has no inner loop).")
        learner = mg.ProtoNet(backbone, FLAGS.n_way, **common)
    else:
        learner_class = {"maml": mg.MAML, "fomaml": mg.FOMAML, "anil": mg.ANIL,
                         "metasgd": mg.MetaSGD}[FLAGS.learner]
        learner = learner_class(mg.FewShotClassifier(backbone, FLAGS.n_way), FLAGS.n_way,
                                inner_lr=FLAGS.inner_lr, inner_steps=FLAGS.inner_steps,
                                eval_inner_steps=FLAGS.eval_inner_steps,
                                recompute=FLAGS.recompute, **common)
    learner.build(image_shape)
    return learner


def _build_optimizer():
    learning_rate = FLAGS.outer_lr
    if FLAGS.outer_lr_decay_steps:
        # A function of the optimizer's iteration count, which the checkpoint
        # holds: a resumed run continues the same schedule.
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            FLAGS.outer_lr, FLAGS.outer_lr_decay_steps, FLAGS.outer_lr_decay_rate,
            staircase=True)
    if FLAGS.outer_optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=FLAGS.outer_momentum)
    return keras.optimizers.Adam(learning_rate)


def _hparams():
    """The flags as HParams values (bool, int, float or str)."""
    values = {}
    for name in run_flags.MODEL_FLAGS + ("dtype", "inner_lr", "eval_inner_steps", "outer_lr",
                                         "outer_lr_decay_steps", "outer_lr_decay_rate",
                                         "eval_k_query", "outer_momentum", "train_steps", "strategy"):
        value = FLAGS[name].value
        if isinstance(value, list):
            value = ",".join(value)
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
    """Everything the modes share, built and checked from the flags before any work."""

    strategy: object
    role: distribute.WorkerRole
    image_shape: tuple
    splits: dict  # flag name ("train_split", ...) -> FewShotSplit
    augment: object
    learner: object
    checkpoints: checkpoints.RunCheckpoints
    summaries: summaries.RunSummaries
    evaluator: evaluation.EpisodeEvaluator

    def spec(self, split_flag, seed):
        """The `EpisodeSpec` of a split named by its flag."""
        return inputs.EpisodeSpec(self.splits[split_flag], FLAGS.n_way, FLAGS.k_shot,
                                  _k_query(split_flag), self.image_shape[0], self.augment, seed)

    def say(self, text):
        """Prints on the chief only (every worker runs the same code)."""
        if self.role.is_chief:
            print(text, flush=True)


def prepare(training, evaluating):
    """Checks the flags against devices, model_dir and data; builds the experiment.

    Raises:
        ConfigError, distribute.DistributionError: Bad flags or data.
    """
    # Device setup must precede every other TensorFlow call.
    if FLAGS.cpu_devices:
        distribute.split_cpu(FLAGS.cpu_devices)
    strategy = distribute.create_strategy(FLAGS.strategy)
    role = distribute.worker_role(strategy)
    replicas = strategy.num_replicas_in_sync
    if FLAGS.meta_batch_size % replicas:
        raise ConfigError(f"--meta_batch_size={FLAGS.meta_batch_size} is not divisible by the "
                          f"{replicas} replicas of --strategy={FLAGS.strategy}; each replica "
                          "takes the same number of tasks.")
    if training:
        _check_model_dir()
    elif tf.train.latest_checkpoint(FLAGS.model_dir) is None:
        raise ConfigError(f"--mode={FLAGS.mode} needs a trained run, but --model_dir="
                          f"{FLAGS.model_dir} holds no checkpoint.")
    if FLAGS.mode != "eval":
        _check_export_dir()
    split_flags = ["train_split"] + (["val_split"] if training else []) + (
        ["eval_split"] if evaluating else [])
    splits = {}
    for split_flag in split_flags:
        splits[split_flag] = _load_split(split_flag)
        _check_episodes(splits[split_flag], split_flag)
    train_split = splits["train_split"]
    size = FLAGS.image_size or train_split.image_shape[0]
    image_shape = (size, size, train_split.image_shape[2])
    _check_image_size(image_shape)
    _check_images(splits, _Say(role.is_chief))

    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(FLAGS.seed)
    with strategy.scope():
        try:
            learner = _build_learner(image_shape)
        except ValueError as error:
            raise ConfigError(f"The model flags do not fit together: {error}") from None
        optimizer = _build_optimizer()
        learner.compile(optimizer=optimizer)
        # mixed_float16: compile wrapped it in a LossScaleOptimizer, whose
        # dynamic loss scale the checkpoints must hold too.
        optimizer = learner.optimizer
        optimizer.build(learner.trainable_variables)
    return Experiment(
        strategy=strategy, role=role, image_shape=image_shape, splits=splits,
        augment={"auto": "auto", "on": True, "off": False}[FLAGS.augment], learner=learner,
        checkpoints=checkpoints.RunCheckpoints(FLAGS.model_dir, role, learner, optimizer,
                                               FLAGS.keep_checkpoints),
        summaries=summaries.RunSummaries(FLAGS.model_dir, enabled=role.is_chief,
                                         mgaug_strategy=FLAGS.mgaug),
        evaluator=evaluation.EpisodeEvaluator(learner, strategy))


def train(experiment):
    """Meta-trains (resuming from model_dir), validating every --eval_every steps."""
    if experiment.role.is_chief:
        os.makedirs(FLAGS.model_dir, exist_ok=True)
        text = run_flags.flagfile_text(FLAGS)
        files.write_text(os.path.join(FLAGS.model_dir, "flags.cfg"), text)
        experiment.summaries.hyperparameters(_hparams(), text)
    val_spec = experiment.spec("val_split", FLAGS.eval_seed)
    meta_trainer = trainer.MetaTrainer(
        experiment.learner, experiment.strategy, experiment.spec("train_split", FLAGS.seed),
        FLAGS.meta_batch_size, experiment.checkpoints, experiment.summaries,
        validator=lambda: experiment.evaluator(val_spec, FLAGS.val_episodes),
        eval_every=FLAGS.eval_every, checkpoint_every=FLAGS.checkpoint_every,
        summary_every=FLAGS.summary_every, show_progress=experiment.role.is_chief)
    # Kept until `_exit_now`: destroying its input iterator can block for a
    # minute in TensorFlow 2.21 (MetaTrainer.train's docstring).
    _STATE["meta_trainer"] = meta_trainer
    meta_trainer.train(FLAGS.train_steps)


def evaluate(experiment, checkpoint_path):
    """Evaluates the restored weights; prints and writes `eval_<split>.json` (95 % CI)."""
    split = experiment.splits["eval_split"]
    experiment.say(f"Evaluating {checkpoint_path} on {FLAGS.eval_episodes} {split.split} "
                   "episodes")
    result = experiment.evaluator(experiment.spec("eval_split", FLAGS.eval_seed),
                                  FLAGS.eval_episodes)
    experiment.say(result.summary())
    if not experiment.role.is_chief:
        return
    step = int(experiment.checkpoints.step.numpy())
    path = os.path.join(FLAGS.model_dir, f"eval_{split.split}.json")
    files.write_json(path, result.to_json(
        checkpoint=checkpoint_path, step=step, dataset=split.dataset, bn_mode=FLAGS.bn_mode,
        learner=FLAGS.learner, n_way=FLAGS.n_way, k_shot=FLAGS.k_shot, k_query=_k_query("eval_split"),
        eval_inner_steps=getattr(experiment.learner, "eval_inner_steps", None),
        eval_seed=FLAGS.eval_seed, config=run_flags.flag_dict(FLAGS)))
    experiment.summaries.evaluation(step, result)
    experiment.summaries.flush()
    experiment.say(f"Results: {path}")


def export_model(experiment, checkpoint_path):
    """Writes the restored weights as a few-shot inference SavedModel."""
    export_dir = _export_dir()
    _check_export_dir()  # again: the folder may have changed while training
    if os.path.isdir(export_dir):  # the run's own earlier export, or --overwrite_export
        shutil.rmtree(export_dir)
    # A plain (undistributed) copy of the learner: the SavedModel must not
    # depend on the training devices.
    serving_learner = _build_learner(experiment.image_shape)
    serving_learner.set_weights(experiment.learner.get_weights())
    eval_augment = preprocess.resolve_augment(experiment.augment,
                                              experiment.splits["train_split"].default_augment)
    export.export_saved_model(serving_learner, export_dir, experiment.image_shape, metadata={
        "checkpoint": checkpoint_path, "dataset": experiment.splits["train_split"].dataset,
        "eval_augment": None if eval_augment is None else dataclasses.asdict(eval_augment)})
    experiment.say(f"SavedModel: {export_dir}")


def run():
    """Runs --mode; raises `ConfigError` (and friends) on bad input."""
    training = FLAGS.mode in ("train", "train_and_eval")
    evaluating = FLAGS.mode in ("eval", "train_and_eval")
    exporting = FLAGS.mode in ("train", "train_and_eval", "export")
    experiment = prepare(training, evaluating)
    _STATE["experiment"] = experiment
    lock = None
    if experiment.role.is_chief:
        # A second live run in the same model_dir would overwrite this one's
        # checkpoints and double its TensorBoard curves.
        try:
            lock = files.RunLock(FLAGS.model_dir).acquire()
        except files.RunLockedError as error:
            raise ConfigError(f"--model_dir={FLAGS.model_dir}: {error}") from None
        if lock.stale_owner:
            experiment.say(f"Replaced a stale lock of a run that no longer runs "
                           f"({lock.stale_owner}).")
    try:
        experiment.say(
            f"{FLAGS.learner} on {experiment.splits['train_split'].dataset} ({FLAGS.n_way}-way "
            f"{FLAGS.k_shot}-shot, {'x'.join(map(str, experiment.image_shape))}), MGAug "
            f"{FLAGS.mgaug}, {experiment.strategy.num_replicas_in_sync} replica(s) on "
            f"{experiment.role.num_workers} worker(s), model_dir {FLAGS.model_dir}")
        if training:
            train(experiment)
            distribute.barrier(experiment.strategy)  # the chief's last saves are complete
        checkpoint_path = experiment.checkpoints.restore_model(
            checkpoints.BEST if FLAGS.use_best_checkpoint else checkpoints.LATEST)
        if evaluating:
            evaluate(experiment, checkpoint_path)
        if exporting and experiment.role.is_chief:
            export_model(experiment, checkpoint_path)
    finally:
        if lock is not None:
            lock.release()


def main(argv):
    if not FLAGS["verbosity"].present:  # TensorFlow's INFO lines would bury the progress bar
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("WARNING")
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    try:
        run()
    except (ConfigError, distribute.DistributionError) as error:
        _fail(str(error), error=error)
    except checkpoints.CheckpointError as error:
        _fail(f"{error} Use the flags of the run that wrote --model_dir={FLAGS.model_dir} "
              "(its flags.cfg) or a new --model_dir.", error=error)
    except trainer.NonFiniteError as error:
        _fail(str(error), EXIT_NON_FINITE, error=error)
    except (data.CorruptDataError, data.DataNotFoundError) as error:
        # Raised inside the input pipeline mid-run (a file the pre-flight
        # check could not catch, or one changed since).
        latest = tf.train.latest_checkpoint(FLAGS.model_dir) if FLAGS.model_dir else None
        kept = (f"The last checkpoint, {latest}, is intact; rerun the same command to resume "
                "from it." if latest else "No checkpoint had been written yet.")
        _fail(f"{error} Replace or remove the file (--verify_images lists every unreadable "
              f"image before training). {kept}", error=error)
    except KeyboardInterrupt as error:
        _fail("interrupted; rerun the same command to resume from the last checkpoint.", 130,
              error=error)
    except Exception as error:  # pylint: disable=broad-except
        # Unexpected (a bug, a file corrupted mid-run): the traceback matters.
        traceback.print_exc()
        _fail(f"{type(error).__name__}; see the traceback above.", 1, error=error)


# Errors of this process are kept alive until it ends: their frames hold the
# run's tf.data iterators, and destroying an iterator whose pipeline has
# failed (a corrupt image) blocks forever inside TensorFlow 2.21: gdb showed
# the main thread waiting in MultiDeviceBuffer::Reset, MapAndBatch's or the
# tf.data thread pool's destructor for threads that never finish, with no
# thread waiting for the GIL. That is why run.py printed its error and then
# never exited; `_exit_now` ends the process without that teardown.
_FAILURES = []
_STATE = {}


def _fail(message, code=EXIT_USAGE, error=None):
    if error is not None:
        _FAILURES.append(error)
    print(f"\nrun.py: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _exit_now(code):
    """Ends the process with `code` without destroying TensorFlow objects (see `_FAILURES`).

    Everything the run wrote is complete by now: checkpoints and JSON files
    are written synchronously; summaries and the standard streams are flushed
    here. Skipping the interpreter's teardown is what guarantees that no
    error path leaves the process running.
    """
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
    """`python trainers/run.py ...`: help, flagfiles, then `main`; never returns."""
    if any(arg in run_flags.HELP_ARGUMENTS for arg in argv[1:]):
        print(run_flags.help_text(FLAGS, __doc__))
        _exit_now(0)
    try:
        argv = argv[:1] + run_flags.expand_flagfiles(argv[1:])
    except run_flags.FlagfileError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        _exit_now(1)
    flags.mark_flag_as_required("model_dir")
    try:
        app.run(main, argv=argv)
    except SystemExit as done:
        _exit_now(done.code)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        _exit_now(1)
    _exit_now(0)


if __name__ == "__main__":
    entry_point(sys.argv)
