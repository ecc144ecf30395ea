"""The episode batch format shared by data pipelines, learners and export.

One element of a training or evaluation dataset is
`((support_images, support_labels, query_images), query_labels)`: B tasks
of S support and M query examples each. The examples are images
`[B, S, H, W, C]` (example shape `(H, W, C)`) or arrays of any other shape
`[B, S, *example_shape]` (vectors, sequences, spectrograms); the field names
say "images" for either. Classification labels are ints `[B, S]`, `[B, M]`
in `[0, N)` (N ways, S = N*K); regression targets are floats `[B, S, D]`,
`[B, M, D]`.
"""

import collections

import numpy as np
import tensorflow as tf

Task = collections.namedtuple(
    "Task", ["support_images", "support_labels", "query_images", "query_labels"])
Task.__doc__ = """One few-shot task (a single episode, no batch axis)."""


def split_episode_batch(data):
    """Unpacks a dataset element into its four tensors."""
    try:
        (support_images, support_labels, query_images), query_labels = data
    except (TypeError, ValueError) as error:
        raise ValueError(
            "An episode batch must be ((support_images, support_labels, query_images), "
            f"query_labels); got {type(data).__name__}.") from error
    return support_images, support_labels, query_images, query_labels


def _static_dim(tensor, axis):
    return tf.TensorShape(tensor.shape)[axis]


def _layout(lead, what):
    """How an input reads, e.g. `[B, S, *example_shape]`."""
    batch = ["B"] if lead else []
    if what == "examples":
        return "[" + ", ".join(batch + ["S", "*example_shape"]) + "]"
    if what == "targets":
        return "[" + ", ".join(batch + ["S", "D"]) + "]"
    return "[" + ", ".join(batch + ["S"]) + "]"


def validate_episode(support_images, support_labels, query_images, query_labels, n_way,
                     batched, objective="classification", example_shape=None):
    """Checks an episode (or batch of episodes) and raises a clear `ValueError`.

    Shapes and dtypes are checked statically (at trace time inside
    `tf.function`); label values are checked eagerly when the tensors are
    concrete, and by graph assertions otherwise.

    Args:
        support_images: Examples `[B, S, *example_shape]` (`[S, ...]` if not
            batched): images `[B, S, H, W, C]` or arrays of any shape.
        support_labels: Classification: ints `[B, S]` (`[S]`), S = N*K.
            Regression: floats `[B, S, D]` (`[S, D]`).
        query_images: `[B, M, *example_shape]` (`[M, ...]`).
        query_labels: Like `support_labels` with M, or `None` at inference.
        n_way: Number of classes per episode (None for regression).
        batched: Whether the tensors carry the leading task axis.
        objective: `"classification"` or `"regression"`.
        example_shape: The shape of one example the learner was built for,
            if known: the examples must have exactly it; otherwise any shape
            of at least one axis, the same for support and query.

    Returns:
        A list of graph assertions (empty in eager mode) to run before use.

    Raises:
        ValueError: A wrong rank, size, dtype or label value, naming the
            input and what was expected.
    """
    lead = 1 if batched else 0
    what = "batch of episodes" if batched else "episode"
    regression = objective == "regression"
    example_rank = None if example_shape is None else len(example_shape)
    for name, tensor in (("support_images", support_images), ("query_images", query_images)):
        rank = len(tensor.shape)
        if example_rank is not None and rank != lead + 1 + example_rank:
            raise ValueError(
                f"{name} of a {what} must have rank {lead + 1 + example_rank} "
                f"({_layout(lead, 'examples')} with example_shape "
                f"{tuple(example_shape)}, the learner's); got shape {tuple(tensor.shape)}.")
        if rank < lead + 2:
            raise ValueError(f"{name} of a {what} must have rank >= {lead + 2} "
                             f"({_layout(lead, 'examples')}); got shape "
                             f"{tuple(tensor.shape)}.")
    if len(support_images.shape) != len(query_images.shape):
        raise ValueError(f"support_images {tuple(support_images.shape)} and query_images "
                         f"{tuple(query_images.shape)} of a {what} must have the same rank.")
    label_rank = 2 + lead if regression else 1 + lead
    for name, tensor in (("support_labels", support_labels), ("query_labels", query_labels)):
        if tensor is None:
            continue
        if len(tensor.shape) != label_rank:
            kind = "regression targets" if regression else "class labels"
            raise ValueError(
                f"{name} of a {what} must have rank {label_rank} ({kind} "
                f"{_layout(lead, 'targets' if regression else 'labels')}); "
                f"got shape {tuple(tensor.shape)}.")
        if regression and not tf.as_dtype(tensor.dtype).is_floating:
            raise ValueError(f"{name} of a regression {what} must be floating-point targets; "
                             f"got dtype {tf.as_dtype(tensor.dtype).name}.")
    if batched:
        sizes = {name: _static_dim(tensor, 0) for name, tensor in (
            ("support_images", support_images), ("support_labels", support_labels),
            ("query_images", query_images), ("query_labels", query_labels))
            if tensor is not None}
        known = {size for size in sizes.values() if size is not None}
        if len(known) > 1:
            raise ValueError(f"The task axis differs between tensors: {sizes}.")
    noun = "targets" if regression else "labels"
    support_count = _static_dim(support_images, lead)
    if support_count is not None and _static_dim(support_labels, lead) not in (None, support_count):
        raise ValueError(f"support_images hold {support_count} images but support_labels "
                         f"hold {_static_dim(support_labels, lead)} {noun}.")
    if query_labels is not None:
        query_count = _static_dim(query_images, lead)
        if query_count is not None and _static_dim(query_labels, lead) not in (None, query_count):
            raise ValueError(f"query_images hold {query_count} images but query_labels "
                             f"hold {_static_dim(query_labels, lead)} {noun}.")
    support_shape = tf.TensorShape(support_images.shape)[lead + 1:]
    query_shape = tf.TensorShape(query_images.shape)[lead + 1:]
    if not support_shape.is_compatible_with(query_shape):
        layout = "(H, W, C)" if len(support_shape) == 3 else "(the example shape)"
        raise ValueError(f"Support images are {support_shape.as_list()} {layout} but query "
                         f"images are {query_shape.as_list()}; they must match.")
    if example_shape is not None and not support_shape.is_compatible_with(example_shape):
        raise ValueError(f"The examples of this {what} have shape {support_shape.as_list()}, "
                         f"but the learner was built for example_shape {tuple(example_shape)}.")
    if regression:
        if query_labels is not None:
            support_width = tf.TensorShape(support_labels.shape)[-1]
            query_width = tf.TensorShape(query_labels.shape)[-1]
            if None not in (support_width, query_width) and support_width != query_width:
                raise ValueError(f"support_labels hold targets of size {support_width} but "
                                 f"query_labels of size {query_width}; they must match.")
        return []
    label_count = _static_dim(support_labels, lead)
    if label_count is not None and label_count % n_way:
        raise ValueError(f"The support set holds {label_count} labels, which is not N*K for "
                         f"n_way={n_way} (not a multiple of {n_way}).")

    label_sets = [("support_labels", support_labels), ("query_labels", query_labels)]
    if tf.executing_eagerly():
        for name, labels in label_sets:
            if labels is None:
                continue
            values = np.asarray(labels)
            if values.size and (values.min() < 0 or values.max() >= n_way):
                raise ValueError(f"{name} must lie in [0, {n_way}) for n_way={n_way}; got "
                                 f"values from {values.min()} to {values.max()}.")
        counts = np.apply_along_axis(lambda row: np.bincount(row, minlength=n_way), -1,
                                     np.asarray(support_labels).reshape(-1, label_count or 1))
        if label_count and (counts != label_count // n_way).any():
            raise ValueError(f"Every class needs K={label_count // n_way} support examples "
                             f"for n_way={n_way}; got per-class counts {counts.tolist()}.")
        return []
    assertions = []
    for name, labels in label_sets:
        if labels is None:
            continue
        assertions.append(tf.debugging.assert_greater_equal(
            labels, tf.cast(0, labels.dtype), message=f"{name} must be >= 0"))
        assertions.append(tf.debugging.assert_less(
            labels, tf.cast(n_way, labels.dtype), message=f"{name} must be < n_way={n_way}"))
    return assertions
