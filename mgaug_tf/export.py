"""SavedModel export of a learner for few-shot inference, with its input preprocessing.

Every few-shot signature adapts to a support set and classifies query images
in one call, with the learner's adaptation inside the graph (the inner loop
with `eval_inner_steps` for MAML-family learners, class prototypes for
ProtoNet, test-time batch norm of `bn_mode`). They differ in what images
they take:

    serving_default, few_shot_encoded:
        support_images [N*K] string (encoded PNG, JPEG, GIF, BMP or WebP files),
        support_labels [N*K] int32 in [0, N), K >= 1 per class,
        query_images   [M] string
    few_shot_uint8:
        support_images [N*K, h, w, c] uint8, query_images [M, h', w', c']
        uint8: pixels of any size, c 1 (grey) or 3 (RGB)
    few_shot_preprocessed:
        support_images [N*K, H, W, C] float32, query_images [M, H, W, C]
        float32: already preprocessed (the learner's own input)
    outputs (all three): logits [M, N] float32, probabilities [M, N] float32,
        predictions [M] int32

The default signature takes encoded files, so a serving client that sends
the images it has gets exactly the pixels the run evaluated on: the
encoded and uint8 signatures apply the training run's preprocessing in the
graph (`InputPreprocessing`): decoding as Pillow decodes (JPEG with the
accurate integer IDCT), conversion to the trained channels (grey by
Pillow's integer ITU-R 601-2 luma), Pillow's bilinear resize to the
reader's size (computed in the graph with Pillow's fixed-point weights, so
the pixels are identical to the data readers', `sources.resize_image`),
inversion where the reader inverts (Omniglot), scaling to [0, 1] and the
evaluation resize, centre crop and normalisation of
`data.preprocess.preprocess`. `preprocess_encoded` (images [M] string) and
`preprocess_uint8` (images [M, h, w, c] uint8) return that float32
`[M, H, W, C]` input alone, for checks.

Learners of examples that are not images, and regression learners, export
with `preprocessing=None`: one signature, `few_shot_preprocessed` (also
`serving_default`), taking float32 arrays of the learner's example shape:

    few_shot_preprocessed (preprocessing=None):
        support_images [S, *example_shape] float32,
        support_labels [S] int32 in [0, N), K >= 1 per class (classification)
                       or [S, D] float32 targets (regression),
        query_images   [M, *example_shape] float32
    outputs: classification as above; regression predictions [M, D] float32

It needs TensorFlow only: `tf.saved_model.load(path).signatures
["serving_default"](...)` works in a process that never imports mgaug_tf.
Inputs of the wrong shape are rejected by a check in the graph naming the
input, its expected and its given shape; unbalanced or out-of-range labels
by assertions naming the input; an undecodable image by TensorFlow's
decoding error. `assets.extra/mgaug_export.json` describes the signatures
and, under `"preprocessing"`, the preprocessing (`InputPreprocessing.to_json`).
"""

import dataclasses
import os

import tensorflow as tf

from mgaug_tf.data import preprocess as preprocess_lib
from mgaug_tf.data import sources
from mgaug_tf.training import files

SIGNATURE_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # = ENCODED_KEY
ENCODED_KEY = "few_shot_encoded"
UINT8_KEY = "few_shot_uint8"
PREPROCESSED_KEY = "few_shot_preprocessed"
PREPROCESS_ENCODED_KEY = "preprocess_encoded"
PREPROCESS_UINT8_KEY = "preprocess_uint8"
METADATA_FILE = os.path.join("assets.extra", "mgaug_export.json")
PREPROCESSING_VERSION = 1  # of the "preprocessing" entry of METADATA_FILE

# Pillow's fixed-point resampling (libImaging/Resample.c): weights carry
# 32 - 8 - 2 fraction bits, and each pass rounds its sums to uint8.
_PIL_PRECISION_BITS = 22
# Pillow's RGB -> L (libImaging/Convert.c): ITU-R 601-2 luma in 16-bit fixed point.
_PIL_LUMA = (19595, 38470, 7471)


@dataclasses.dataclass(frozen=True)
class InputPreprocessing:
    """How a training run turned image files into the learner's input.

    Two stages, as in `mgaug_tf.data`: the reader (`FewShotSplit.preprocessing`:
    decoding, conversion to `channels`, Pillow's bilinear resize to
    `reader_size`, `invert`) gives uint8 pixels; the episode pipeline
    (`data.preprocess.preprocess` at evaluation) scales them to [0, 1],
    resizes them to `image_size` (or resizes by `eval_resize_ratio` and
    centre-crops, for runs trained with random resized crops) and normalises
    them.

    Attributes:
        channels: 1 (grey) or 3 (RGB), the learner's input channels.
        reader_size: `(height, width)` of the reader's uint8 images.
        invert: Whether the reader inverts pixels (`255 - x`; Omniglot).
        image_size: `(height, width)` of the learner's input.
        eval_resize_ratio: None, or the centre crop's ratio (>= 1).
        normalize: None, or `((mean per channel), (std per channel))`
            applied after scaling to [0, 1].

    Raises:
        ValueError: A field out of range, naming it and the value received.
    """

    channels: int
    reader_size: tuple
    invert: bool
    image_size: tuple
    eval_resize_ratio: float = None
    normalize: tuple = None

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3; got {self.channels!r}.")
        for name in ("reader_size", "image_size"):
            value = getattr(self, name)
            try:
                sizes = tuple(int(size) for size in value)
            except (TypeError, ValueError):
                sizes = ()
            if len(sizes) != 2 or min(sizes) < 1 or list(sizes) != list(value):
                raise ValueError(f"{name} must be (height, width) positive ints; got {value!r}.")
            object.__setattr__(self, name, sizes)
        if self.eval_resize_ratio is not None:
            object.__setattr__(self, "eval_resize_ratio", float(self.eval_resize_ratio))
            if not self.eval_resize_ratio >= 1:
                raise ValueError(f"eval_resize_ratio must be None or >= 1; got "
                                 f"{self.eval_resize_ratio!r}.")
        if self.normalize is not None:
            mean, std = preprocess_lib.resolve_normalize(self.normalize, self.channels)
            object.__setattr__(self, "normalize", (tuple(float(v) for v in mean.numpy()),
                                                   tuple(float(v) for v in std.numpy())))

    @classmethod
    def from_split(cls, split, image_size=None, augment="auto", normalize=None):
        """The evaluation preprocessing of episodes drawn from `split`.

        Args:
            split: The `FewShotSplit` the learner was trained on.
            image_size, augment, normalize: As given to
                `data.episode_dataset` (None: the split's own size).
        """
        reader = split.preprocessing
        options = preprocess_lib.resolve_augment(augment, split.default_augment)
        if image_size is None:
            image_size = tuple(split.image_shape[:2])
        elif isinstance(image_size, int):
            image_size = (image_size, image_size)
        crop = options is not None and options.random_resized_crop
        return cls(channels=reader["channels"], reader_size=tuple(reader["size"]),
                   invert=reader["invert"], image_size=tuple(image_size),
                   eval_resize_ratio=options.eval_resize_ratio if crop else None,
                   normalize=normalize)

    @property
    def image_shape(self):
        """`(H, W, C)` of the learner's input."""
        return self.image_size + (self.channels,)

    def to_json(self):
        """The JSON-ready description stored in the export's metadata."""
        return {
            "version": PREPROCESSING_VERSION,
            "decode": "as Pillow: PNG, JPEG (accurate integer IDCT), GIF (first frame), BMP, "
                      "WebP; alpha dropped",
            "reader": {"channels": self.channels, "channel_conversion": "pillow",
                       "size": list(self.reader_size), "resize": sources.RESIZE_RULE,
                       "invert": self.invert},
            "scale": "x / 255",
            "evaluation": {"size": list(self.image_size),
                           "resize": "bilinear" if self.eval_resize_ratio is None
                           else "centre_crop",
                           "eval_resize_ratio": self.eval_resize_ratio},
            "normalize": None if self.normalize is None
            else {"mean": list(self.normalize[0]), "std": list(self.normalize[1])},
        }

    @classmethod
    def from_json(cls, description):
        """Inverse of `to_json`.

        Raises:
            ValueError: Not a description of version `PREPROCESSING_VERSION`.
        """
        if not isinstance(description, dict) \
                or description.get("version") != PREPROCESSING_VERSION:
            version = description.get("version") if isinstance(description, dict) else None
            raise ValueError(f"preprocessing description of version {version!r}; this "
                             f"mgaug_tf reads version {PREPROCESSING_VERSION}.")
        reader, evaluation = description["reader"], description["evaluation"]
        normalize = description.get("normalize")
        return cls(channels=reader["channels"], reader_size=tuple(reader["size"]),
                   invert=reader["invert"], image_size=tuple(evaluation["size"]),
                   eval_resize_ratio=evaluation["eval_resize_ratio"],
                   normalize=None if normalize is None
                   else (tuple(normalize["mean"]), tuple(normalize["std"])))


def convert_channels(images, channels):
    """uint8 `[..., c]` (c 1 to 4) -> uint8 `[..., channels]`, as Pillow's `convert`.

    Alpha is dropped; grey -> RGB repeats the channel; RGB -> grey is
    Pillow's `(19595 R + 38470 G + 7471 B + 32768) >> 16`.
    """
    count = tf.shape(images)[-1]
    check = tf.debugging.Assert(
        (count >= 1) & (count <= 4),
        ["images must have 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) channels; given:",
         count])
    with tf.control_dependencies([check]):
        images = tf.identity(images)

    def grey():
        return images[..., :1]

    def luma():
        rgb = tf.cast(images[..., :3], tf.int32)
        weighted = (rgb[..., 0:1] * _PIL_LUMA[0] + rgb[..., 1:2] * _PIL_LUMA[1]
                    + rgb[..., 2:3] * _PIL_LUMA[2] + (1 << 15))
        return tf.cast(tf.bitwise.right_shift(weighted, 16), tf.uint8)

    if channels == 1:
        converted = tf.cond(count <= 2, grey, luma)
    else:
        converted = tf.cond(count <= 2, lambda: tf.repeat(grey(), 3, axis=-1),
                            lambda: images[..., :3])
    return tf.ensure_shape(converted, images.shape[:-1].concatenate([channels]))


def _pil_bilinear_weights(in_size, out_size):
    """Pillow's bilinear weights, float64 `[out_size, in_size]` holding its fixed-point ints.

    The steps and their order follow `precompute_coeffs` and
    `normalize_coeffs_8bpc` of Pillow's Resample.c, in float64 as there, so
    the integer weights are Pillow's.
    """
    scale = tf.cast(in_size, tf.float64) / float(out_size)
    filterscale = tf.maximum(scale, 1.0)  # antialiased when shrinking
    support = filterscale  # the bilinear filter's support is 1
    ksize = tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1
    centre = (tf.range(out_size, dtype=tf.float64) + 0.5) * scale
    first = tf.maximum(tf.cast(centre - support + 0.5, tf.int32), 0)  # casts truncate, as C
    count = tf.minimum(tf.cast(centre + support + 0.5, tf.int32), in_size) - first
    taps = tf.range(ksize)
    positions = first[:, None] + taps[None, :]
    inverse_scale = 1.0 / filterscale  # multiplied, as Pillow does (not divided)
    distance = tf.abs((tf.cast(positions, tf.float64) - centre[:, None] + 0.5) * inverse_scale)
    weights = tf.where((distance < 1.0) & (taps[None, :] < count[:, None]), 1.0 - distance, 0.0)
    # Summed tap by tap, in Pillow's order: the normalised weights are then bit-identical.
    total = tf.foldl(lambda running, tap: running + tap, tf.transpose(weights),
                     initializer=tf.zeros([out_size], tf.float64))
    fixed = tf.floor(0.5 + tf.math.divide_no_nan(weights, total[:, None])
                     * float(1 << _PIL_PRECISION_BITS))
    return tf.reduce_sum(fixed[..., None] * tf.one_hot(positions, in_size, dtype=tf.float64),
                         axis=1)


def resize_like_pil(images, size):
    """uint8 `[N, h, w, C]` -> uint8 `[N, size[0], size[1], C]`, Pillow's bilinear resize.

    The twin of `mgaug_tf.data.sources.resize_image` in the graph, pixel for
    pixel: Pillow's integer weights, a horizontal pass rounded to uint8, then
    a vertical one; a side already of the wanted size is not resampled.
    Sums of ints below 2**53 are exact in float64, whatever their order.
    """
    height, width = size
    half = float(1 << (_PIL_PRECISION_BITS - 1))
    unit = float(1 << _PIL_PRECISION_BITS)
    pixels = tf.cast(images, tf.float64)

    def resample(equation, matrix):
        return tf.clip_by_value(tf.floor((tf.einsum(equation, pixels, matrix) + half) / unit),
                                0.0, 255.0)

    in_width = tf.shape(images)[2]
    pixels = tf.cond(tf.equal(in_width, width), lambda: pixels,
                     lambda: resample("nhwc,ow->nhoc", _pil_bilinear_weights(in_width, width)))
    in_height = tf.shape(images)[1]
    pixels = tf.cond(tf.equal(in_height, height), lambda: pixels,
                     lambda: resample("nhwc,oh->nowc", _pil_bilinear_weights(in_height, height)))
    return tf.ensure_shape(tf.cast(pixels, tf.uint8), [None, height, width, images.shape[-1]])


def decode_like_pil(encoded, channels):
    """One encoded image (string scalar) -> uint8 `[h, w, channels]`, as the data readers.

    JPEG is decoded with the accurate integer IDCT (Pillow's; TensorFlow's
    default is the fast one), other formats by `tf.io.decode_image` (first
    frame of a GIF); then `convert_channels`.
    """
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=0, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=0, expand_animations=False))
    return convert_channels(tf.ensure_shape(image, [None, None, None]), channels)


def preprocess_uint8(images, preprocessing):
    """uint8 `[N, h, w, c]` (any size, c 1 or 3) -> the learner's float32 input.

    Args:
        images: uint8 images of any size; grey or RGB (converted to
            `preprocessing.channels`).
        preprocessing: The run's `InputPreprocessing`.

    Returns:
        float32 `[N, H, W, C]` (`preprocessing.image_shape`).
    """
    images = convert_channels(images, preprocessing.channels)
    return _evaluation_stage(_reader_stage(images, preprocessing), preprocessing)


def preprocess_encoded(encoded, preprocessing):
    """Encoded images, string `[N]` (PNG, JPEG, ...) -> the learner's float32 input."""
    height, width = preprocessing.reader_size

    def read(one):
        image = decode_like_pil(one, preprocessing.channels)
        return _reader_stage(image[None], preprocessing)[0]

    images = tf.map_fn(read, encoded, fn_output_signature=tf.TensorSpec(
        [height, width, preprocessing.channels], tf.uint8))
    return _evaluation_stage(images, preprocessing)


def _reader_stage(images, preprocessing):
    """The data reader's stage on uint8 `[N, h, w, C]`: its resize, then its inversion."""
    images = resize_like_pil(images, preprocessing.reader_size)
    return 255 - images if preprocessing.invert else images


def _evaluation_stage(images, preprocessing):
    """The episode pipeline's evaluation preprocessing (`data.preprocess.preprocess`)."""
    augment = None
    if preprocessing.eval_resize_ratio is not None:
        augment = preprocess_lib.AugmentOptions(eval_resize_ratio=preprocessing.eval_resize_ratio)
    normalization = None
    if preprocessing.normalize is not None:
        normalization = tuple(tf.constant(values, tf.float32)
                              for values in preprocessing.normalize)
    return preprocess_lib.preprocess(images, preprocessing.image_size, training=False,
                                     augment=augment, normalization=normalization, seed=None)


def _shape_checks(inputs):
    """Graph checks of each input's rank and sizes, for NumPy and tf.Tensor inputs alike.

    The signature takes any shape so that every caller gets these short
    messages (the input, its expected and its given shape) instead of a
    dump of the arrays or a failure deep inside the network.

    Args:
        inputs: `[(name, tensor, expected shape)]`, the shape's sizes ints or
            names of free sizes (`"M"`).

    Returns:
        The tensors with their static shapes set, after the checks.
    """
    checked = []
    for name, tensor, expected in inputs:
        wanted = ", ".join(str(size) for size in expected)
        expected = [size if isinstance(size, int) else None for size in expected]
        shape = tf.shape(tensor, out_type=tf.int64)
        rank_ok = tf.equal(tf.size(shape), len(expected))
        # Compare sizes only when the rank matches (the gather needs it).
        sizes_ok = tf.cond(
            rank_ok,
            lambda shape=shape, expected=expected: tf.reduce_all(tf.stack(
                [tf.constant(True)] + [tf.equal(shape[axis], size)
                                       for axis, size in enumerate(expected)
                                       if size is not None])),
            lambda: tf.constant(False))
        check = tf.debugging.Assert(
            sizes_ok, [f"{name} must have shape [{wanted}]; given shape:", shape], summarize=8,
            name=f"check_{name}_shape")
        with tf.control_dependencies([check]):
            tensor = tf.identity(tensor)
        checked.append(tf.ensure_shape(tensor, expected))
    return checked


def _episode_checks(support_images, support_labels, query_images, n_way):
    """Graph assertions with messages naming the offending input (`n_way` None: regression)."""
    support_count = tf.shape(support_images)[0]
    count = "S" if n_way is None else "N*K"  # the signatures' own name of the support size
    checks = [
        tf.debugging.assert_equal(
            support_count, tf.shape(support_labels)[0],
            message=f"support_images and support_labels must hold the same number ({count}) of "
                    "examples"),
        tf.debugging.assert_positive(
            tf.shape(query_images)[0], message="query_images must hold at least one example"),
    ]
    if n_way is None:
        return checks
    checks += [
        tf.debugging.assert_non_negative(
            support_labels, message=f"support_labels must be in [0, {n_way}) (n_way={n_way})"),
        tf.debugging.assert_less(
            support_labels, tf.constant(n_way, support_labels.dtype),
            message=f"support_labels must be in [0, {n_way}) (n_way={n_way})"),
    ]
    with tf.control_dependencies(checks):
        counts = tf.math.bincount(support_labels, minlength=n_way, maxlength=n_way)
        balanced = tf.debugging.assert_equal(
            counts, tf.fill([n_way], tf.maximum(counts[0], 1)),
            message=f"support_labels must give each of the {n_way} classes (labels 0..{n_way - 1}) "
                    "the same number K >= 1 of support images")
    return checks + [balanced]


class FewShotInference(tf.Module):
    """A `tf.Module` holding a learner's weights and its few-shot inference functions.

    Args:
        learner: A built `MetaLearner` (outside any distribution strategy).
        preprocessing: The run's `InputPreprocessing`, whose `image_shape` is
            the shape the learner was trained on; or None: only
            `few_shot_preprocessed`, on float32 examples of
            `learner.example_shape` (any example shape).

    Attributes:
        few_shot_encoded, few_shot_uint8, few_shot_preprocessed,
        preprocess_encoded, preprocess_uint8: The `tf.function`s exported as
            the signatures of the same names (see the module docstring);
            only `few_shot_preprocessed` without `preprocessing`.
    """

    def __init__(self, learner, preprocessing=None):
        super().__init__(name="few_shot_inference")
        n_way = learner.n_way
        regression = learner.objective == "regression"
        image_shape = list(learner.example_shape if preprocessing is None
                           else preprocessing.image_shape)
        self.preprocessing = preprocessing
        # Track the variables only (not the Keras objects): the SavedModel then
        # restores as plain TensorFlow, with no Python classes needed.
        self.weights = [getattr(variable, "value", variable) for variable in learner.variables]

        def classify(support_images, support_labels, query_images):
            support_images, query_images = _shape_checks([
                ("support_images", support_images, ["N*K", *image_shape]),
                ("query_images", query_images, ["M", *image_shape])])
            with tf.control_dependencies(_episode_checks(support_images, support_labels,
                                                         query_images, n_way)):
                support_labels = tf.identity(support_labels)
            logits = tf.cast(learner.adapt_and_predict(support_images, support_labels,
                                                       query_images), tf.float32)
            if regression:
                return {"predictions": logits}
            return {"logits": logits, "probabilities": tf.nn.softmax(logits),
                    "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32)}

        def labels_checked(support_labels):
            return _shape_checks([("support_labels", support_labels,
                                   ["S", "D"] if regression else ["N*K"])])[0]

        def encoded(name, images):
            return preprocess_encoded(_shape_checks([(name, images, ["count"])])[0],
                                      preprocessing)

        def uint8(name, images):
            return preprocess_uint8(_shape_checks([(name, images, ["count", "h", "w", "c"])])[0],
                                    preprocessing)

        def few_shot(name, dtype, prepare):
            """The few-shot `tf.function` `name` taking `dtype` images, made ready by `prepare`."""
            def one(support_images, support_labels, query_images):
                return classify(prepare("support_images", support_images),
                                labels_checked(support_labels),
                                prepare("query_images", query_images))
            one.__name__ = name  # the traced function's name in the SavedModel
            # Any shape in every signature: `_shape_checks` names a wrong one (see there).
            return tf.function(one, autograph=False, input_signature=[
                tf.TensorSpec(None, dtype, name="support_images"),
                tf.TensorSpec(None, tf.float32 if regression else tf.int32,
                              name="support_labels"),
                tf.TensorSpec(None, dtype, name="query_images")])

        # Already the learner's input: `classify` checks its shape.
        self.few_shot_preprocessed = few_shot("few_shot_preprocessed", tf.float32,
                                              lambda name, images: images)
        if preprocessing is None:
            return

        few_shot_encoded = few_shot("few_shot_encoded", tf.string, encoded)
        few_shot_uint8 = few_shot("few_shot_uint8", tf.uint8, uint8)

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec(None, tf.string, name="images")])
        def preprocess_encoded_images(images):
            return {"images": encoded("images", images)}

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec(None, tf.uint8, name="images")])
        def preprocess_uint8_images(images):
            return {"images": uint8("images", images)}

        self.few_shot_encoded = few_shot_encoded
        self.few_shot_uint8 = few_shot_uint8
        self.preprocess_encoded = preprocess_encoded_images
        self.preprocess_uint8 = preprocess_uint8_images

    def signatures(self):
        """`{signature key: tf.function}` for `tf.saved_model.save`."""
        if self.preprocessing is None:
            return {SIGNATURE_KEY: self.few_shot_preprocessed,
                    PREPROCESSED_KEY: self.few_shot_preprocessed}
        return {SIGNATURE_KEY: self.few_shot_encoded, ENCODED_KEY: self.few_shot_encoded,
                UINT8_KEY: self.few_shot_uint8, PREPROCESSED_KEY: self.few_shot_preprocessed,
                PREPROCESS_ENCODED_KEY: self.preprocess_encoded,
                PREPROCESS_UINT8_KEY: self.preprocess_uint8}


def _describe_array_signature(learner):
    """The metadata of a `preprocessing=None` export's one signature."""
    shape = ", ".join(str(size) for size in learner.example_shape)
    examples = f"float32 [{{count}}, {shape}], preprocessed"
    if learner.objective == "regression":
        labels, outputs = "float32 [S, D], targets", {"predictions": "float32 [M, D]"}
    else:
        n_way = learner.n_way
        labels = f"int32 [N*K] in [0, {n_way}), K >= 1 per class"
        outputs = {"logits": f"float32 [M, {n_way}]",
                   "probabilities": f"float32 [M, {n_way}]", "predictions": "int32 [M]"}
    signature = {"inputs": {"support_images": examples.format(count="S"),
                            "support_labels": labels,
                            "query_images": examples.format(count="M")},
                 "outputs": outputs}
    return {PREPROCESSED_KEY: signature,
            SIGNATURE_KEY: dict(signature, same_as=PREPROCESSED_KEY)}


def _describe_signatures(n_way, image_shape):
    height, width, channels = image_shape
    labels = f"int32 [N*K] in [0, {n_way}), K >= 1 per class"
    few_shot_outputs = {"logits": f"float32 [M, {n_way}]",
                        "probabilities": f"float32 [M, {n_way}]", "predictions": "int32 [M]"}
    float_images = f"float32 [{{count}}, {height}, {width}, {channels}], preprocessed"
    encoded = "string [{count}], encoded image files (PNG, JPEG, GIF, BMP, WebP)"
    uint8 = "uint8 [{count}, h, w, c], any h and w, c 1 (grey) or 3 (RGB)"
    signatures = {}
    for key, images in ((ENCODED_KEY, encoded), (UINT8_KEY, uint8),
                        (PREPROCESSED_KEY, float_images)):
        signatures[key] = {
            "inputs": {"support_images": images.format(count="N*K"),
                       "support_labels": labels,
                       "query_images": images.format(count="M")},
            "outputs": few_shot_outputs}
    signatures[SIGNATURE_KEY] = dict(signatures[ENCODED_KEY], same_as=ENCODED_KEY)
    for key, images in ((PREPROCESS_ENCODED_KEY, encoded), (PREPROCESS_UINT8_KEY, uint8)):
        signatures[key] = {"inputs": {"images": images.format(count="M")},
                           "outputs": {"images": float_images.format(count="M")}}
    return signatures


def export_saved_model(learner, export_dir, preprocessing=None, metadata=None):
    """Writes `learner` as a few-shot inference SavedModel that preprocesses its inputs.

    Args:
        learner: A built `MetaLearner` created outside any distribution
            strategy (copy the weights of a distributed one into a fresh
            learner first), for inputs of `preprocessing.image_shape`.
        export_dir: Output folder (files of an earlier export are overwritten;
            `mgaug-train` refuses a non-empty folder it does not own).
        preprocessing: The `InputPreprocessing` the learner was trained with
            (`InputPreprocessing.from_split(train_split, image_size, augment)`),
            for image signatures; or None for the one signature on float32
            arrays of `learner.example_shape` (examples that are not images,
            or images already preprocessed).
        metadata: Optional JSON-ready dict added to
            `assets.extra/mgaug_export.json` (e.g. the checkpoint).

    Returns:
        `export_dir`.

    Raises:
        TypeError: `preprocessing` is not None or an `InputPreprocessing`.
        ValueError: `preprocessing=None` and the learner is not built (its
            example shape is unknown).

    Example:
        >>> prep = InputPreprocessing.from_split(train_split)
        >>> export_saved_model(learner, "/tmp/export", prep)
        >>> model = tf.saved_model.load("/tmp/export")
        >>> out = model.signatures["serving_default"](
        ...     support_images=tf.constant([png_bytes, ...]), support_labels=labels,
        ...     query_images=tf.constant([png_bytes, ...]))
        >>> out["predictions"]
    """
    if preprocessing is not None and not isinstance(preprocessing, InputPreprocessing):
        raise TypeError(f"preprocessing must be None or an InputPreprocessing (e.g. "
                        f"InputPreprocessing.from_split(train_split)); got {preprocessing!r}.")
    if preprocessing is None and getattr(learner, "example_shape", None) is None:
        raise ValueError(f"export_saved_model(preprocessing=None) needs a built learner (its "
                         f"example shape); build {type(learner).__name__} first, e.g. "
                         "learner.build(example_shape).")
    module = FewShotInference(learner, preprocessing)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    if preprocessing is None:
        signatures, shape_key, shape = (_describe_array_signature(learner), "example_shape",
                                        learner.example_shape)
    else:
        signatures, shape_key, shape = (
            _describe_signatures(learner.n_way, preprocessing.image_shape), "image_shape",
            preprocessing.image_shape)
    description = {
        "signature": SIGNATURE_KEY,
        "signatures": signatures,
        "preprocessing": None if preprocessing is None else preprocessing.to_json(),
        "n_way": learner.n_way,
        shape_key: list(shape),
        "objective": learner.objective,
        "learner": type(learner).__name__,
        "bn_mode": learner.bn_mode,
    }
    description.update(metadata or {})
    path = os.path.join(export_dir, METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_json(path, description)
    return export_dir
