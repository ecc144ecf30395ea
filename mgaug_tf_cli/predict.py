"""Few-shot prediction with a SavedModel exported by `mgaug-train`.

    mgaug-predict --saved_model=runs/demo/export \\
        --support_dir=my_support --query_dir=my_queries

(`python trainers/predict.py ...` in a checkout.)

`--support_dir` holds one sub-folder per class, named after the class, each
with the same number K >= 1 of images; there must be as many classes as the
model's n_way. Every image in `--query_dir` is classified; one line per query
image is printed: `file<TAB>predicted class<TAB>probability`.

Needs TensorFlow, numpy and Pillow only (not mgaug_tf): this file can be
copied alone and run as `python predict.py ...`. Images are read as
grayscale or RGB to match the model, scaled to [0, 1] and resized as the
evaluation pipeline does (`assets.extra/mgaug_export.json`: a bilinear resize,
or a centre crop for models trained with random resized crops).
"""

import contextlib
import json
import logging
import os
import sys

try:  # mgaug-tf installed: filter TensorFlow's start-up noise (imports no TensorFlow)
    from mgaug_tf_cli import quiet

    quiet.configure()
    _quiet_stderr = quiet.native_stderr
except ImportError:  # this file copied alone: TensorFlow only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _quiet_stderr = contextlib.nullcontext

# pylint: disable=wrong-import-position
import numpy as np

with _quiet_stderr():
    import tensorflow as tf
from absl import app
from absl import flags
from PIL import Image, UnidentifiedImageError

flags.DEFINE_string("saved_model", None, "Folder of the exported SavedModel.")
flags.DEFINE_string("support_dir", None, "Folder with one sub-folder of K images per class.")
flags.DEFINE_string("query_dir", None, "Folder of the images to classify.")
FLAGS = flags.FLAGS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
METADATA_FILE = os.path.join("assets.extra", "mgaug_export.json")


class InputError(Exception):
    """A bad folder or image, reported without a traceback."""


def _images_in(folder):
    return sorted(name for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, name)))


def eval_preprocess(image, size, eval_resize_ratio=None):
    """uint8 `[h, w, C]` -> float32 `[size, size, C]` in [0, 1], as evaluation episodes.

    Mirrors `mgaug_tf.data.preprocess.preprocess(training=False)`: a bilinear
    resize, antialiased when shrinking; or, when the model was trained with
    random resized crops, the centre `1 / eval_resize_ratio` of the image
    resampled once to `size`.
    """
    images = tf.cast(image, tf.float32)[None] / 255.0
    if eval_resize_ratio:
        margin = (1 - 1 / eval_resize_ratio) / 2
        images = tf.image.crop_and_resize(images, [[margin, margin, 1 - margin, 1 - margin]],
                                          [0], (size, size))
    elif image.shape[:2] != (size, size):
        shrinking = image.shape[0] > size or image.shape[1] > size
        images = tf.image.resize(images, (size, size), method="bilinear", antialias=shrinking)
    return images[0]


def _read_image(path, channels, size, eval_resize_ratio):
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"Cannot read image {path}: {error}") from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)
    return eval_preprocess(pixels, size, eval_resize_ratio)


def _metadata(saved_model):
    path = os.path.join(saved_model, METADATA_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _eval_resize_ratio(saved_model):
    augment = _metadata(saved_model).get("eval_augment")
    if augment and augment.get("random_resized_crop"):
        return float(augment["eval_resize_ratio"])
    return None


def predict(saved_model, support_dir, query_dir):
    """Classifies the query images; returns `[(file, class name, probability)]`.

    Raises:
        InputError: Missing folders, a class count other than the model's
            n_way, unequal shots, no query images or an unreadable image.
    """
    for flag, folder in (("saved_model", saved_model), ("support_dir", support_dir),
                         ("query_dir", query_dir)):
        if not os.path.isdir(folder):
            raise InputError(f"--{flag}={folder} is not a folder.")
    try:
        model = tf.saved_model.load(saved_model)
    except (OSError, ValueError) as error:
        raise InputError(f"--saved_model={saved_model} is not a readable SavedModel "
                         f"({error}).") from None
    signature = model.signatures["serving_default"]
    image_shape = _metadata(saved_model).get("image_shape")
    if image_shape is None:  # exports whose signature fixed the image shape
        image_shape = signature.structured_input_signature[1]["query_images"].shape[1:]
    height, width, channels = (int(size) for size in image_shape)
    n_way = signature.structured_outputs["logits"].shape[-1]
    ratio = _eval_resize_ratio(saved_model)

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
    size = int(height)
    if height != width:
        raise InputError(f"The model takes {height}x{width} images; only square inputs are "
                         "supported.")

    support_images, support_labels = [], []
    for label, name in enumerate(classes):
        for file in shots[name]:
            support_images.append(_read_image(os.path.join(support_dir, name, file), channels,
                                              size, ratio))
            support_labels.append(label)
    query_images = [_read_image(os.path.join(query_dir, file), channels, size, ratio)
                    for file in queries]
    outputs = signature(support_images=tf.stack(support_images),
                        support_labels=tf.constant(support_labels, tf.int32),
                        query_images=tf.stack(query_images))
    predictions = outputs["predictions"].numpy()
    probabilities = outputs["probabilities"].numpy()
    return [(file, classes[label], float(probabilities[index, label]))
            for index, (file, label) in enumerate(zip(queries, predictions))]


def _main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
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
    with _quiet_stderr():
        tf.config.list_physical_devices()  # cuInit noise, filtered
    logging.getLogger("absl").addFilter(_NoGradientWarnings())  # the loader logs through absl
    flags.mark_flags_as_required(["saved_model", "support_dir", "query_dir"])
    # absl's --help prints the __main__ module's docstring, which a console
    # script's generated module does not have.
    sys.modules["__main__"].__doc__ = sys.modules["__main__"].__doc__ or __doc__
    app.run(_main)


if __name__ == "__main__":
    main()
