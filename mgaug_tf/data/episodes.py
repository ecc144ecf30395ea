"""`episode_dataset`: N-way K-shot episodes from a `FewShotSplit`, in tf.data.

Sampling happens in the graph with stateless random ops keyed by
`(seed, episode id)`: episode `i` is the same whatever the parallelism, the
number of replicas or the run, which makes evaluation episodes reproducible
and lets each input pipeline take its own episode ids. Images are read by the
split's source (decode on demand, or a slice of an array) in parallel map
calls, augmented as a whole episode, batched and prefetched.
"""

import numpy as np
import tensorflow as tf

from mgaug_tf.data.errors import counted, short_listing
from mgaug_tf.data.preprocess import preprocess, resolve_augment, resolve_normalize
from mgaug_tf.data.split import FewShotSplit


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _output_size(image_size, split):
    if image_size is None:
        return tuple(split.image_shape[:2])
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        sizes = (image_size, image_size)
    else:
        try:
            sizes = tuple(image_size)
        except TypeError:
            sizes = ()
    if len(sizes) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
        raise ValueError(f"image_size must be a positive int or (height, width); got "
                         f"{image_size!r}.")
    return tuple(int(s) for s in sizes)


def short_classes(split, needed):
    """The classes with fewer than `needed` examples, as text for an error, or "".

    Returns:
        E.g. `"'cat' (3), 'dog' (0)"`: class names with their example counts,
        at most `errors.SHOWN`, then `"and N more"` (`errors.short_listing`).
    """
    sizes = split.class_sizes
    return short_listing([f"{split.class_names[i]!r} ({int(sizes[i])})"
                          for i in np.flatnonzero(sizes < needed)])


def eligible_classes(split, n_way, k_shot, k_query):
    """Indices of the classes with at least `k_shot + k_query` examples.

    Raises:
        ValueError: Fewer than `n_way` such classes (naming the setting and the
            short classes); or, for a split with `strict_class_sizes` (the
            user's own `folder` and `arrays` data), any short class at all,
            named with its count.
    """
    sizes = split.class_sizes
    needed = k_shot + k_query
    eligible = np.flatnonzero(sizes >= needed)
    where = f"{split.dataset} {split.split}"
    if split.strict_class_sizes and len(eligible) < split.num_classes:
        short = split.num_classes - len(eligible)
        them = "it" if short == 1 else "them"
        raise ValueError(
            f"{counted(short, 'class', 'classes')} of {where} {'has' if short == 1 else 'have'} "
            f"fewer than k_shot + k_query = {k_shot} + {k_query} = {needed} examples: "
            f"{short_classes(split, needed)}. Add examples to {them}, remove {them} from the "
            "split, or lower k_shot or k_query.")
    if len(eligible) < n_way:
        raise ValueError(
            f"{where} has {counted(len(eligible), 'class', 'classes')} with at least "
            f"k_shot + k_query = {k_shot} + {k_query} = {needed} images (of "
            f"{split.num_classes} classes; the largest has {int(sizes.max(initial=0))}; short: "
            f"{short_classes(split, needed)}), but n_way={n_way} needs {n_way}. Lower n_way, "
            "k_shot or k_query.")
    return eligible


def make_episode_sampler(split, n_way, k_shot, k_query, seed):
    """A graph function `episode_id -> (items, augment_seed)`.

    `items` (int64 `[n_way * (k_shot + k_query)]`) are the split's item ids:
    first the support images, class by class (`k_shot` each), then the query
    images in the same class order. Class `j` of the episode gets label `j`;
    the classes are drawn in random order, so labels are shuffled per episode.
    """
    eligible = eligible_classes(split, n_way, k_shot, k_query)
    items, offsets = split.item_table()
    sizes = tf.constant(split.class_sizes[eligible], tf.int32)
    offsets = tf.constant(offsets[eligible], tf.int64)
    items = tf.constant(items, tf.int64)
    max_size = int(split.class_sizes[eligible].max())
    per_class = k_shot + k_query

    def sample(episode_id):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), tf.cast(episode_id, tf.int64)]), 3)
        # top_k of uniform keys = n_way distinct classes in random order.
        keys = tf.random.stateless_uniform([len(eligible)], seeds[0])
        chosen = tf.math.top_k(keys, n_way, sorted=True).indices
        # Distinct images per class: top_k of keys, with positions past the
        # class size keyed -1 so they are never picked.
        image_keys = tf.random.stateless_uniform([n_way, max_size], seeds[1])
        valid = tf.range(max_size)[None, :] < tf.gather(sizes, chosen)[:, None]
        picked = tf.math.top_k(tf.where(valid, image_keys, -1.0), per_class).indices
        flat = tf.gather(offsets, chosen)[:, None] + tf.cast(picked, tf.int64)
        episode_items = tf.gather(items, flat)                          # [n_way, K + Q]
        ordered = tf.concat([tf.reshape(episode_items[:, :k_shot], [-1]),
                             tf.reshape(episode_items[:, k_shot:], [-1])], axis=0)
        return ordered, seeds[2]

    return sample


def _check_no_image_settings(split, image_size, augment, normalize):
    """Image settings make no sense for a non-image split: refuse them by name."""
    where = (f"{split.dataset} {split.split} holds non-image examples of shape "
             f"{split.example_shape}")
    if image_size is not None:
        raise ValueError(f"image_size={image_size!r}, but {where}; pass image_size=None.")
    if not (augment is None or augment is False
            or (isinstance(augment, str) and augment == "auto")):
        raise ValueError(f"augment={augment!r}, but {where}, which are never augmented; pass "
                         "augment=None (or \"auto\").")
    if normalize is not None:
        raise ValueError(f"normalize={normalize!r}, but {where}, which are fed unchanged; "
                         "normalise the arrays yourself and pass normalize=None.")


def episode_dataset(split, n_way, k_shot, k_query, meta_batch_size, image_size=None, *,
                    training=True, augment="auto", normalize=None, seed=0, num_episodes=None,
                    input_context=None, num_parallel_calls=tf.data.AUTOTUNE,
                    prefetch=tf.data.AUTOTUNE):
    """A `tf.data.Dataset` of meta-batches of N-way K-shot episodes.

    Each element is `((support_images, support_labels, query_images),
    query_labels)` with shapes `[B, N*K, H, W, C]` float32, `[B, N*K]` int32,
    `[B, N*Q, H, W, C]` float32, `[B, N*Q]` int32: B tasks of N classes drawn
    from the split, K support and Q query images per class (no image in both),
    labels 0..N-1 in a random class order per episode. Images are scaled to
    [0, 1], augmented when training, then normalised if asked. Support and
    query images are grouped by label (label 0 first).

    A non-image split (`split.is_image` False, e.g. `load("arrays", ...)`)
    gives `[B, N*K, *example_shape]` and `[B, N*Q, *example_shape]` float32
    examples with their values unchanged (no scaling, resizing, augmentation
    or normalisation), from the same sampler.

    Args:
        split: A `FewShotSplit` from `mgaug_tf.data.load`.
        n_way: N, classes per episode.
        k_shot: K, support images per class.
        k_query: Q, query images per class.
        meta_batch_size: B, episodes per element (across all replicas when
            `input_context` is given).
        image_size: Output size, int or `(height, width)`; default the
            split's image size. Must be None for a non-image split.
        training: True: an endless stream (unless `num_episodes`) with
            augmentation. False: exactly `num_episodes` episodes, evaluation
            preprocessing; the last batch may be smaller.
        augment: `"auto"` (on for natural images, off for Omniglot and
            glyphs), None/False, True, a dict of options or `AugmentOptions`.
            Pass the same value to the training and evaluation datasets: with
            random resized crops, evaluation resizes by 1.15 and centre-crops.
            A non-image split takes only `"auto"` (off), None or False.
        normalize: None, `"imagenet"`, or `(mean, std)` per channel (images
            only).
        seed: Episode `i` of a seed is always the same episode (also under
            any number of replicas), so evaluation episodes repeat across runs.
        num_episodes: Number of episodes (required when `training=False`).
        input_context: A `tf.distribute.InputContext` (from
            `strategy.distribute_datasets_from_function`): each input
            pipeline takes every `num_input_pipelines`-th episode id and
            batches `meta_batch_size / num_replicas_in_sync` episodes, so
            every replica trains on different tasks.
        num_parallel_calls: Episodes read in parallel.
        prefetch: Elements prefetched (`tf.data.AUTOTUNE` by default).

    Returns:
        A `tf.data.Dataset` in the episode batch format.

    Raises:
        ValueError: A bad setting, naming it; notably when the split has fewer
            than `n_way` classes with `k_shot + k_query` images (or, for the
            user's own `folder`/`arrays` data, any class has fewer), or image
            settings (`image_size`, `augment`, `normalize`) for a non-image
            split.

    Example:
        >>> split = mgaug_tf.data.load("glyphs", split="train")
        >>> data = episode_dataset(split, n_way=5, k_shot=1, k_query=15, meta_batch_size=4)
        >>> (support, support_labels, query), query_labels = next(iter(data))
        >>> support.shape, query_labels.shape
        (TensorShape([4, 5, 28, 28, 1]), TensorShape([4, 75]))
    """
    if not isinstance(split, FewShotSplit):
        raise ValueError(f"split must be a FewShotSplit (from mgaug_tf.data.load); got "
                         f"{type(split).__name__}.")
    n_way = _positive_int(n_way, "n_way", 2)
    k_shot = _positive_int(k_shot, "k_shot")
    k_query = _positive_int(k_query, "k_query")
    meta_batch_size = _positive_int(meta_batch_size, "meta_batch_size")
    if not split.is_image:
        _check_no_image_settings(split, image_size, augment, normalize)
    size = _output_size(image_size, split) if split.is_image else None
    if num_episodes is not None:
        num_episodes = _positive_int(num_episodes, "num_episodes")
    elif not training:
        raise ValueError("Evaluation (training=False) needs num_episodes, the number of "
                         "fixed episodes to evaluate on (e.g. 600).")
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    augment = resolve_augment(augment, split.default_augment)
    normalization = (resolve_normalize(normalize, split.image_shape[2]) if split.is_image
                     else None)

    pipelines, pipeline_id, batch_size = 1, 0, meta_batch_size
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync
        if meta_batch_size % replicas:
            raise ValueError(f"meta_batch_size={meta_batch_size} must be divisible by the "
                             f"{replicas} replicas in sync.")
        batch_size = meta_batch_size // replicas
        pipelines, pipeline_id = (input_context.num_input_pipelines,
                                  input_context.input_pipeline_id)

    sample = make_episode_sampler(split, n_way, k_shot, k_query, int(seed))
    count = n_way * (k_shot + k_query)
    support_labels = tf.repeat(tf.range(n_way, dtype=tf.int32), k_shot)
    query_labels = tf.repeat(tf.range(n_way, dtype=tf.int32), k_query)

    def make_episode(episode_id):
        items, augment_seed = sample(episode_id)
        if split.is_image:
            images = tf.numpy_function(split.load_items, [items], tf.uint8, stateful=False)
            images.set_shape((count,) + split.image_shape)
            images = preprocess(images, size, training, augment, normalization, augment_seed)
        else:
            images = tf.numpy_function(split.load_items, [items], tf.float32, stateful=False)
            images.set_shape((count,) + split.example_shape)
        return (images[:n_way * k_shot], support_labels, images[n_way * k_shot:],
                query_labels)

    if num_episodes is None:
        ids = tf.data.Dataset.counter(start=pipeline_id, step=pipelines)
    else:
        ids = tf.data.Dataset.range(pipeline_id, num_episodes, pipelines)
    episodes = ids.map(make_episode, num_parallel_calls=num_parallel_calls,
                       deterministic=True)
    batches = episodes.batch(batch_size, drop_remainder=training)
    batches = batches.map(lambda support, s_labels, query, q_labels:
                          ((support, s_labels, query), q_labels))
    return batches.prefetch(prefetch)
