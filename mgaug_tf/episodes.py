"""The episode batch format shared by data pipelines, learners and export.

One element of a training or evaluation dataset is
`((support_images, support_labels, query_images), query_labels)` with
shapes `[B, N*K, H, W, C]`, `[B, N*K]`, `[B, N*Q, H, W, C]`, `[B, N*Q]`:
B tasks, N ways, K shots and Q queries per class, labels in `[0, N)`.
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


def validate_episode(support_images, support_labels, query_images, query_labels, n_way,
                     batched):
    """Checks an episode (or batch of episodes) and raises a clear `ValueError`.

    Shapes are checked statically (at trace time inside `tf.function`); label
    values are checked eagerly when the tensors are concrete, and by graph
    assertions otherwise.

    Args:
        support_images: `[B, N*K, H, W, C]` (`[N*K, H, W, C]` if not batched).
        support_labels: `[B, N*K]` (`[N*K]`).
        query_images: `[B, M, H, W, C]` (`[M, H, W, C]`).
        query_labels: `[B, M]` (`[M]`), or `None` at inference.
        n_way: Number of classes per episode.
        batched: Whether the tensors carry the leading task axis.

    Returns:
        A list of graph assertions (empty in eager mode) to run before use.
    """
    lead = 1 if batched else 0
    what = "batch of episodes" if batched else "episode"
    expected_image_rank = 4 + lead
    for name, tensor, rank in (("support_images", support_images, expected_image_rank),
                               ("query_images", query_images, expected_image_rank),
                               ("support_labels", support_labels, 1 + lead),
                               ("query_labels", query_labels, 1 + lead)):
        if tensor is None:
            continue
        if len(tensor.shape) != rank:
            layout = ("[B, N*K, H, W, C]" if rank == 5 else "[N*K, H, W, C]") if rank >= 4 else (
                "[B, N*K]" if rank == 2 else "[N*K]")
            raise ValueError(f"{name} of a {what} must have rank {rank} ({layout}); "
                             f"got shape {tuple(tensor.shape)}.")
    if batched:
        sizes = {name: _static_dim(tensor, 0) for name, tensor in (
            ("support_images", support_images), ("support_labels", support_labels),
            ("query_images", query_images), ("query_labels", query_labels))
            if tensor is not None}
        known = {size for size in sizes.values() if size is not None}
        if len(known) > 1:
            raise ValueError(f"The task axis differs between tensors: {sizes}.")
    support_count = _static_dim(support_images, lead)
    if support_count is not None and _static_dim(support_labels, lead) not in (None, support_count):
        raise ValueError(f"support_images hold {support_count} images but support_labels "
                         f"hold {_static_dim(support_labels, lead)} labels.")
    if query_labels is not None:
        query_count = _static_dim(query_images, lead)
        if query_count is not None and _static_dim(query_labels, lead) not in (None, query_count):
            raise ValueError(f"query_images hold {query_count} images but query_labels "
                             f"hold {_static_dim(query_labels, lead)} labels.")
    support_shape = tf.TensorShape(support_images.shape)[lead + 1:]
    query_shape = tf.TensorShape(query_images.shape)[lead + 1:]
    if not support_shape.is_compatible_with(query_shape):
        raise ValueError(f"Support images are {support_shape.as_list()} (H, W, C) but query "
                         f"images are {query_shape.as_list()}; they must match.")
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
