"""Few-shot prediction with a SavedModel exported by `mgaug-train`.

    mgaug-predict --saved_model=runs/demo/export \\
        --support_dir=my_support --query_dir=my_queries

(`python trainers/predict.py ...` in a checkout.)

`--support_dir` holds one sub-folder per class, named after the class, each
with the same number K >= 1 of images; there must be as many classes as the
model's n_way. Every image in `--query_dir` is classified; one line per query
image is printed: `file<TAB>predicted class<TAB>probability`.

The files' bytes go to the SavedModel's `few_shot_encoded` signature (its
default), whose graph decodes and preprocesses them exactly as the training
run's data reader and evaluation episodes did (`mgaug_tf.export`); nothing
is preprocessed here. Files are first checked by the data readers' own quick
check (`mgaug_tf.data.sources.quick_image_problem`), so an empty or
non-image file gets the message `mgaug-train` gives.
"""

import json
import logging
import os
import sys

from mgaug_tf_cli import quiet

quiet.configure()  # filters TensorFlow's start-up noise; imports no TensorFlow

# pylint: disable=wrong-import-position
from absl import app
from absl import flags

from mgaug_tf_cli.flags import HELP_ARGUMENTS

# TensorFlow and the library are imported by `load_libraries` once the flags
# and folders passed their checks, so that a mistyped flag is answered at once.
tf = export = sources = None


def load_libraries():
    """Imports TensorFlow and the library into this module's names (once)."""
    # pylint: disable=global-statement,import-outside-toplevel,redefined-outer-name
    global tf, export, sources
    if tf is not None:
        return
    with quiet.native_stderr():
        import tensorflow as tf

        from mgaug_tf import export
        from mgaug_tf.data import sources
        tf.config.list_physical_devices()  # cuInit noise, filtered


flags.DEFINE_string("saved_model", None, "Folder of the exported SavedModel.")
flags.DEFINE_string("support_dir", None, "Folder with one sub-folder of K images per class.")
flags.DEFINE_string("query_dir", None, "Folder of the images to classify.")
FLAGS = flags.FLAGS

# The formats the SavedModel's graph decodes (`tf.io.decode_image`).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class InputError(Exception):
    """A bad folder or image, reported without a traceback."""


def _images_in(folder):
    return sorted(name for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, name)))


def _read_image(path):
    """The encoded bytes of `path`, after the data readers' quick check."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InputError(f"Cannot read image file {path}: {error.strerror or error}.") from None
    problem = sources.quick_image_problem(len(data), data[:sources.SIGNATURE_BYTES])
    if problem is not None:
        raise InputError(f"{path}: {problem}")
    return data


def _metadata(saved_model):
    """The export's metadata; `InputError` for an export without its preprocessing."""
    if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
        raise InputError(
            f"--saved_model={saved_model} is not a SavedModel (no saved_model.pb); "
            "mgaug-train exports into <model_dir>/export unless --export_dir says otherwise.")
    path = os.path.join(saved_model, export.METADATA_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        metadata = {}
    if isinstance(metadata, dict) and metadata.get("preprocessing", "") is None \
            and "example_shape" in metadata:
        raise InputError(_array_export_message(saved_model, metadata))
    if not isinstance(metadata, dict) or "preprocessing" not in metadata:
        raise InputError(
            f"--saved_model={saved_model} has no input preprocessing in {export.METADATA_FILE} "
            "(an export of an earlier mgaug-tf, whose signature took preprocessed pixels); "
            "export the run again: mgaug-train --mode=export --model_dir=<the run's folder>.")
    try:
        export.InputPreprocessing.from_json(metadata["preprocessing"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"--saved_model={saved_model}: {export.METADATA_FILE} has an "
                         f"unreadable preprocessing entry ({str(error).rstrip('.')}).") from None
    return metadata


def _array_export_message(saved_model, metadata):
    """Why an export of a run on non-image examples takes no files, and how to call it."""
    shape = ", ".join(str(size) for size in metadata["example_shape"])
    if metadata.get("objective") == "regression":
        labels = "float32 targets support_labels [S, D]"
    else:
        labels = f"int32 support_labels [S] in [0, {metadata.get('n_way')})"
    return (f"--saved_model={saved_model} is an export of a run on examples that are not images "
            f"(objective {metadata.get('objective')}): its one signature "
            f"({export.PREPROCESSED_KEY}, also serving_default) takes float32 examples of shape "
            f"[{shape}] (support_images [S, {shape}], query_images [M, {shape}]) and {labels}, "
            "not image files; call it from Python: docs/cli.md \"The SavedModel\", "
            "\"Examples that are not images\".")


def _undecodable(model, paths, images, error):
    """The `InputError` naming the first file the SavedModel's graph cannot decode."""
    preprocess = model.signatures[export.PREPROCESS_ENCODED_KEY]
    for path, data in zip(paths, images):
        try:
            preprocess(images=tf.constant([data]))
        except tf.errors.InvalidArgumentError as image_error:
            reason = image_error.message.strip().splitlines()[0]
            return InputError(f"Cannot decode image {path} ({len(data)} bytes): {reason}")
    return InputError(f"The SavedModel refused the images: "
                      f"{error.message.strip().splitlines()[0]}")


def _check_folders(saved_model, support_dir, query_dir):
    """`InputError` naming the first argument that is not a folder."""
    for flag, folder in (("saved_model", saved_model), ("support_dir", support_dir),
                         ("query_dir", query_dir)):
        if not os.path.isdir(folder):
            raise InputError(f"--{flag}={folder} is not a folder.")


def predict(saved_model, support_dir, query_dir):
    """Classifies the query images; returns `[(file, class name, probability)]`.

    Raises:
        InputError: Missing folders, an export without its preprocessing or
            of examples that are not images (its signature takes arrays), a
            class count other than the model's n_way, unequal shots, no
            query images or an unreadable image (named).
    """
    _check_folders(saved_model, support_dir, query_dir)
    load_libraries()
    metadata = _metadata(saved_model)
    n_way = int(metadata["n_way"])

    classes = sorted(name for name in os.listdir(support_dir)
                     if os.path.isdir(os.path.join(support_dir, name)))
    if len(classes) != n_way:
        raise InputError(f"--support_dir={support_dir} has {len(classes)} class folders "
                         f"{classes}; the model is {n_way}-way and needs {n_way}.")
    shots = {name: _images_in(os.path.join(support_dir, name)) for name in classes}
    if len({len(files) for files in shots.values()}) != 1 or not shots[classes[0]]:
        raise InputError(f"Every class folder of --support_dir needs the same number K >= 1 of "
                         f"images; found {({name: len(files) for name, files in shots.items()})}.")
    queries = _images_in(query_dir)
    if not queries:
        raise InputError(f"--query_dir={query_dir} holds no images ({IMAGE_EXTENSIONS}).")

    support_paths, support_labels = [], []
    for label, name in enumerate(classes):
        for file in shots[name]:
            support_paths.append(os.path.join(support_dir, name, file))
            support_labels.append(label)
    query_paths = [os.path.join(query_dir, file) for file in queries]
    support_images = [_read_image(path) for path in support_paths]
    query_images = [_read_image(path) for path in query_paths]
    try:
        model = tf.saved_model.load(saved_model)
    except (OSError, ValueError) as error:
        raise InputError(f"--saved_model={saved_model} is not a readable SavedModel "
                         f"({error}).") from None
    try:
        outputs = model.signatures[export.ENCODED_KEY](
            support_images=tf.constant(support_images, tf.string),
            support_labels=tf.constant(support_labels, tf.int32),
            query_images=tf.constant(query_images, tf.string))
    except tf.errors.InvalidArgumentError as error:
        raise _undecodable(model, support_paths + query_paths, support_images + query_images,
                           error) from None
    predictions = outputs["predictions"].numpy()
    probabilities = outputs["probabilities"].numpy()
    return [(file, classes[label], float(probabilities[index, label]))
            for index, (file, label) in enumerate(zip(queries, predictions))]


def _parse_flags(argv):
    """absl's flag parser: the flags are checked before TensorFlow is imported.

    A refused flag or a missing one ends the process with one line and exit
    code 2; `predict` checks the folders, also before TensorFlow is imported.
    """
    if any(arg in HELP_ARGUMENTS for arg in argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)  # absl's own would exit 1
    try:
        rest = FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))
    if len(rest) > 1:
        _fail(f"unexpected arguments {rest[1:]}; flags look like --name=value.")
    missing = [f"--{name}" for name in ("saved_model", "support_dir", "query_dir")
               if not FLAGS[name].value]
    if missing:
        _fail(f"{', '.join(missing)} must be given.")
    return rest


def _main(argv):
    del argv  # checked by _parse_flags
    try:
        rows = predict(FLAGS.saved_model, FLAGS.support_dir, FLAGS.query_dir)
    except InputError as error:
        _fail(str(error))
    for file, name, probability in rows:
        print(f"{file}\t{name}\t{probability:.3f}")


def _fail(message):
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "mgaug-predict"
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class _NoGradientWarnings(logging.Filter):
    """Drops the SavedModel loader's warning that gradients of custom-gradient ops would fail.

    The export's ops have custom gradients (`tf.saved_model.load` warns once
    per function); prediction asks for no gradient.
    """

    def filter(self, record):
        return "with ops with unsaved custom gradients" not in record.getMessage()


def main():
    """`mgaug-predict`: runs the program on `sys.argv`; exits with its status."""
    logging.getLogger("absl").addFilter(_NoGradientWarnings())  # the loader logs through absl
    # absl's --help prints the __main__ module's docstring, which a console
    # script's generated module does not have.
    sys.modules["__main__"].__doc__ = sys.modules["__main__"].__doc__ or __doc__
    # --help lists the main module's key flags, and absl names that module by
    # sys.argv[0], which for a console script is not this module.
    for name in ("saved_model", "support_dir", "query_dir"):
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
    app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
    main()
