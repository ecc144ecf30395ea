"""SavedModel export of a learner for few-shot inference.

The exported default signature adapts to a support set and classifies query
images in one call, with the learner's adaptation inside the graph (the
inner loop with `eval_inner_steps` for MAML-family learners, class
prototypes for ProtoNet, test-time batch norm of `bn_mode`):

    inputs:  support_images [N*K, H, W, C] float32 (pixels in [0, 1]),
             support_labels [N*K] int32 in [0, N), K >= 1 per class,
             query_images   [M, H, W, C] float32
    outputs: logits [M, N], probabilities [M, N], predictions [M] int32

It needs TensorFlow only: `tf.saved_model.load(path).signatures
["serving_default"](...)` works in a process that never imports mgaug_tf.
Inputs of the wrong shape (NumPy arrays or tensors) are rejected by a
check in the graph naming the input, its expected and its given shape;
unbalanced or out-of-range labels by assertions naming the input.
`assets.extra/mgaug_export.json` describes the inputs and the preprocessing
(for `trainers/predict.py`).
"""

import os

import tensorflow as tf

from mgaug_tf.training import files

SIGNATURE_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
METADATA_FILE = os.path.join("assets.extra", "mgaug_export.json")


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
    """Graph assertions with messages naming the offending input."""
    support_count = tf.shape(support_images)[0]
    checks = [
        tf.debugging.assert_equal(
            support_count, tf.shape(support_labels)[0],
            message="support_images and support_labels must hold the same number (N*K) of "
                    "examples"),
        tf.debugging.assert_positive(
            tf.shape(query_images)[0], message="query_images must hold at least one image"),
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
    """A `tf.Module` holding a learner's weights and its few-shot inference function.

    Args:
        learner: A built `MetaLearner` (outside any distribution strategy).
        image_shape: `(H, W, C)` the learner was trained on.

    Attributes:
        few_shot_predict: The `tf.function` exported as the default signature.
    """

    def __init__(self, learner, image_shape):
        super().__init__(name="few_shot_inference")
        n_way = learner.n_way
        # Track the variables only (not the Keras objects): the SavedModel then
        # restores as plain TensorFlow, with no Python classes needed.
        self.weights = [getattr(variable, "value", variable) for variable in learner.variables]

        # Any shape: `_shape_checks` names a wrong one (see there).
        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec(None, tf.float32, name="support_images"),
            tf.TensorSpec(None, tf.int32, name="support_labels"),
            tf.TensorSpec(None, tf.float32, name="query_images")])
        def few_shot_predict(support_images, support_labels, query_images):
            support_images, support_labels, query_images = _shape_checks([
                ("support_images", support_images, ["N*K", *image_shape]),
                ("support_labels", support_labels, ["N*K"]),
                ("query_images", query_images, ["M", *image_shape])])
            with tf.control_dependencies(_episode_checks(support_images, support_labels,
                                                         query_images, n_way)):
                support_labels = tf.identity(support_labels)
            logits = tf.cast(learner.adapt_and_predict(support_images, support_labels,
                                                       query_images), tf.float32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits),
                    "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32)}

        self.few_shot_predict = few_shot_predict


def export_saved_model(learner, export_dir, image_shape, metadata=None):
    """Writes `learner` as a few-shot inference SavedModel.

    Args:
        learner: A built `MetaLearner` created outside any distribution
            strategy (copy the weights of a distributed one into a fresh
            learner first).
        export_dir: Output folder (files of an earlier export are overwritten;
            `mgaug-train` refuses a non-empty folder it does not own).
        image_shape: `(H, W, C)` of the images the learner was trained on.
        metadata: Optional JSON-ready dict stored in
            `assets.extra/mgaug_export.json` (e.g. preprocessing settings).

    Returns:
        `export_dir`.

    Example:
        >>> export_saved_model(learner, "/tmp/export", (28, 28, 1))
        >>> model = tf.saved_model.load("/tmp/export")
        >>> out = model.signatures["serving_default"](
        ...     support_images=s, support_labels=l, query_images=q)
        >>> out["predictions"]
    """
    image_shape = tuple(int(size) for size in image_shape)
    module = FewShotInference(learner, image_shape)
    tf.saved_model.save(module, export_dir, signatures={SIGNATURE_KEY: module.few_shot_predict})
    description = {
        "signature": SIGNATURE_KEY,
        "inputs": {"support_images": f"float32 [N*K, {image_shape[0]}, {image_shape[1]}, "
                                     f"{image_shape[2]}], pixels in [0, 1]",
                   "support_labels": f"int32 [N*K] in [0, {learner.n_way}), K >= 1 per class",
                   "query_images": f"float32 [M, {image_shape[0]}, {image_shape[1]}, "
                                   f"{image_shape[2]}]"},
        "outputs": {"logits": f"float32 [M, {learner.n_way}]",
                    "probabilities": f"float32 [M, {learner.n_way}]",
                    "predictions": "int32 [M]"},
        "n_way": learner.n_way,
        "image_shape": list(image_shape),
        "learner": type(learner).__name__,
        "bn_mode": learner.bn_mode,
    }
    description.update(metadata or {})
    path = os.path.join(export_dir, METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_json(path, description)
    return export_dir
