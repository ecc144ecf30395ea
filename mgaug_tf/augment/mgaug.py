"""MGAug: meta-gradient augmentation with pruned sub-networks.

For each task the learner computes the full network's meta-gradient; MGAug
then draws K keep ratios and K masks, runs each sub-network through the very
same per-task computation as the full network (`learner.task_outcome` with
masks, restarting from theta), and adds their meta-gradients.
"""

import keras
import numpy as np
import tensorflow as tf

from mgaug_tf import episodes as episodes_lib
from mgaug_tf import functional
from mgaug_tf import interpolation
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.augment import strategies as strategies_lib
from mgaug_tf.backbones import classifier as classifier_lib
from mgaug_tf.learners.base import accuracy, sequential_loop, unscale

REDUCTIONS = ("sum", "mean", "maxup")
WIDTH_EXECUTIONS = ("auto", "sliced", "masked")
# "auto" runs sliced only when no keep ratio exceeds this: on this project's
# CPU (ProtoNet, K = 3, 84 px, one core) sliced sub-networks made the step
# 1.9-2.0x faster at keep 0.5 but 9 % slower at 0.7 and 18 % slower at
# 0.8-1.0 (the overhead was not profiled), and held more memory at
# every ratio (docs/performance.md, "Sliced random_width sub-networks").
SLICED_AUTO_MAX_KEEP = 0.5
RESIZE_METHODS = ("align_corners", "half_pixel")
FLATTEN_HEADS = classifier_lib.FLATTEN_HEADS


def resize_images(images, size, method="align_corners"):
    """Bilinear resize of `[B, H, W, C]` images to `size x size`, keeping their dtype.

    Args:
        images: `[B, H, W, C]` floating-point tensor.
        size: Target height and width, a Python int or a scalar int32 tensor
            (drawn at run time inside `tf.function`).
        method: `"align_corners"`: output pixel o samples input coordinate
            o * (H - 1) / (size - 1), so corner pixels are copied exactly
            (PyTorch `align_corners=True`, the reference code's resize;
            `interpolation.resize_align_corners`, exact in the images' dtype);
            `"half_pixel"`: pixel centres (o + 0.5) * H / size - 0.5
            (`tf.image.resize`).

    Returns:
        `[B, size, size, C]`, the dtype of `images`. Images are data, so only
        the forward value matters (no gradient is taken through it).
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {method!r}.")
    if method == "align_corners":
        return interpolation.resize_align_corners(images, size, size)
    target = tf.stack([size, size]) if isinstance(size, tf.Tensor) else [int(size)] * 2
    return tf.cast(tf.image.resize(images, target, method="bilinear"), images.dtype)


def _pick(condition, when_true, otherwise):
    """`when_true` where `condition` holds, else `otherwise` (lists entry by entry).

    `condition` is a Python bool (decided when traced: no op) or a scalar
    bool tensor (`tf.where`, exact: it selects, never blends).
    """
    if condition is True or condition is False:
        return when_true if condition else otherwise
    if isinstance(when_true, (list, tuple)):
        return [tf.where(condition, a, b) for a, b in zip(when_true, otherwise)]
    return tf.where(condition, when_true, otherwise)


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MGAug:
    """Meta-gradient augmentation, given to any learner as `augmentation=`.

    Args:
        strategy: `"random_width"`, `"random_param"`, `"catfish"` (MMCA,
            the paper's default) or `"snip"` (ablation).
        num_subnets: K, sub-networks per task.
        keep_range: `(keep_min, keep_max)` of the reference keep-ratio rule.
        reduction: `"sum"` (reference code: g = grad L_full + sum_k grad L_k),
            `"mean"` (the same divided by K + 1) or `"maxup"` (L_full +
            max_k L_k: only the worst sub-network back-propagates).
        resolutions: Optional sizes in pixels; each sub-network sees its
            task's support and query images resized bilinearly to one of them,
            drawn uniformly per sub-network (the full network is never
            resized; the reference code's "shot augmentation", e.g. (84, 64,
            48) at 84 px). Each must be at most the image size and leave a
            non-empty feature map (Conv4, ResNet12: at least 16 px). ProtoNet
            and `pooling="avg"` backbones take any size; a MAML-family
            learner with a flatten head needs `flatten_head`.
        resize_method: How sub-network images are resized: `"align_corners"`
            (default; bilinear with corner pixels aligned, PyTorch's
            `interpolate(..., align_corners=True)` as in the reference code)
            or `"half_pixel"` (bilinear with half-pixel centres,
            `tf.image.resize`). The default is the reference's because
            resolutions exist to reproduce its released multi-resolution
            runs, the only evidence for them; for 84 -> 64 the two differ by
            up to 0.86 (mean 0.11) on unit-normal images. `parity=True`
            requires it.
        flatten_head: How a flatten head serves the shorter features of
            sub-networks at smaller resolutions (MAML family): `None` (refuse
            such resolutions), `"reference"` (the reference code's rule: the
            head kernel rows whose channels-first flatten index is below the
            sub-network's feature length; see
            `backbones.classifier.reference_head_rows`) or
            `"resize_features"` (resize the last feature map to the
            full-resolution grid before flattening; not in the reference).
            Sets the network's `FewShotClassifier.flatten_head`. `parity=True`
            implies `"reference"`.
        width_execution: How `random_width` sub-networks run: `"sliced"`
            (each convolution on the kept output channels and the previous
            layer's kept input channels, about r^2 of its FLOPs;
            `functional.SlicedMasks`, `Conv4.sliced_call`), `"masked"` (the
            full-width pass with the channel masks multiplied in) or
            `"auto"` (default: sliced where it applies and pays, i.e.
            `random_width` on a network with `sliced_call` (Conv4
            backbones), no XLA, and keep ratios of at most
            `SLICED_AUTO_MAX_KEEP` = 0.5, the range where it was measured
            faster; masked otherwise). Both compute the same
            function, removed channels' bias and batch-norm constants
            included; float64 tests hold their losses and meta-gradients
            equal for every learner. `"sliced"` where it cannot apply (other
            strategies, ResNet-12, `jit_compile=True`, a
            smallest keep ratio that keeps no channel of some layer)
            raises `ValueError`.
        image_size: Optional input size, to check `resolutions` at construction
            (otherwise they are checked when the learner is built).
        include_dense: Also prune dense kernels (default: convolutions only).
        keep_ratio_sampler: Overrides `keep_range` (e.g.
            `ConstantKeepRatio(0.9)`).
        parity: Reproduce the reference code's quirks: prune k - 1 entries
            (k = int(n * (1 - r))) with catfish/snip, score with the gradient
            buffer accumulated over the meta-batch's earlier tasks, cap
            keep ratios at 0.999 (0.99 for ProtoNet), resize with aligned
            corners and slice a flatten head by the reference rule.
        seed: Base seed of the mask and resolution draws.

    Example:
        >>> learner = MAML(FewShotClassifier(Conv4(), 5), n_way=5,
        ...                augmentation=MGAug("catfish", num_subnets=3))
    """

    def __init__(self, strategy="catfish", num_subnets=3, keep_range=(0.8, 1.0),
                 reduction="sum", resolutions=None, image_size=None, include_dense=False,
                 keep_ratio_sampler=None, parity=False, seed=0, resize_method="align_corners",
                 flatten_head=None, width_execution="auto"):
        self.strategy_name = strategy
        self.strategy = strategies_lib.get_strategy(strategy)
        if not isinstance(num_subnets, int) or num_subnets < 1:
            raise ValueError(f"num_subnets (K) must be an integer >= 1, got {num_subnets!r}.")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        if keep_ratio_sampler is None:
            if len(tuple(keep_range)) != 2:
                raise ValueError(f"keep_range must be (keep_min, keep_max), got {keep_range!r}.")
            keep_ratio_sampler = masks_lib.ReferenceKeepRatios(*keep_range)
        self.keep_ratio_sampler = keep_ratio_sampler
        self.num_subnets = num_subnets
        self.reduction = reduction
        self.resolutions = None
        if resolutions:
            self.resolutions = tuple(int(size) for size in resolutions)
            if min(self.resolutions) < 1:
                raise ValueError(f"resolutions must be positive sizes, got {resolutions!r}.")
            if image_size is not None:
                self._check_resolutions(image_size)
        if resize_method not in RESIZE_METHODS:
            raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got "
                             f"{resize_method!r}.")
        if flatten_head is not None and flatten_head not in FLATTEN_HEADS:
            raise ValueError(f"flatten_head must be None or one of {FLATTEN_HEADS}, got "
                             f"{flatten_head!r}.")
        if parity and resize_method != "align_corners":
            raise ValueError(f"parity=True reproduces the reference code, which resizes with "
                             f"resize_method='align_corners'; got {resize_method!r}.")
        if parity and flatten_head not in (None, "reference"):
            raise ValueError(f"parity=True reproduces the reference code, whose flatten head "
                             f"rule is flatten_head='reference'; got {flatten_head!r}.")
        if width_execution not in WIDTH_EXECUTIONS:
            raise ValueError(f"width_execution must be one of {WIDTH_EXECUTIONS}, got "
                             f"{width_execution!r}.")
        if width_execution == "sliced" and strategy != "random_width":
            raise ValueError(f"width_execution='sliced' needs channel masks (strategy "
                             f"'random_width'); strategy {strategy!r} prunes single entries, "
                             "which run masked (width_execution='masked' or 'auto').")
        self.width_execution = width_execution
        self.resize_method = resize_method
        self.flatten_head = "reference" if parity and flatten_head is None else flatten_head
        self.include_dense = include_dense
        self.parity = parity
        self.seed = int(seed)

    def _check_resolutions(self, image_size):
        if self.resolutions and max(self.resolutions) > int(image_size):
            raise ValueError(f"MGAug resolutions {self.resolutions} include sizes larger than "
                             f"the input images ({image_size} px); sub-networks only downscale.")

    def check_learner(self, learner):
        """Raises a clear `ValueError` if this augmentation cannot serve `learner`.

        With resolutions and a flatten head, also sets the network's
        `flatten_head` to this augmentation's.
        """
        from mgaug_tf.learners.protonet import ProtoNet  # pylint: disable=import-outside-toplevel
        if self.resolutions and not isinstance(learner, ProtoNet):
            network = learner.network
            backbone = getattr(network, "backbone", None)
            if getattr(backbone, "pooling", None) != "avg":
                if self.flatten_head is None:
                    raise ValueError(
                        f"MGAug resolutions={self.resolutions} with a flatten head (backbone "
                        f"pooling={getattr(backbone, 'pooling', None)!r}): the head's input "
                        "length changes with the resolution. Choose flatten_head='reference' "
                        "(the reference code's rule; parity=True implies it) or "
                        "'resize_features', or build the backbone with pooling='avg'.")
                if not hasattr(network, "head_features") or not hasattr(backbone,
                                                                        "feature_grid"):
                    raise ValueError(
                        f"MGAug flatten_head={self.flatten_head!r} needs a FewShotClassifier "
                        f"whose backbone has feature_grid; got {type(network).__name__} with "
                        f"{type(backbone).__name__}.")
                if network.flatten_head not in (None, self.flatten_head):
                    raise ValueError(
                        f"MGAug flatten_head={self.flatten_head!r} conflicts with the "
                        f"network's flatten_head={network.flatten_head!r}.")
                network.flatten_head = self.flatten_head
        if self.width_execution == "sliced":
            self.executes_sliced(learner)  # raises where slicing cannot apply
        if self.parity and self.keep_ratio_sampler.__class__ is masks_lib.ReferenceKeepRatios \
                and self.keep_ratio_sampler.cap is None:
            # The reference code's caps: 0.99 for ProtoNet, 0.999 otherwise.
            self.keep_ratio_sampler.cap = 0.99 if isinstance(learner, ProtoNet) else 0.999

    def _sliced_problems(self, learner):
        """Why sliced width execution cannot serve `learner` (empty: it can)."""
        problems = []
        if self.strategy_name != "random_width":
            problems.append(f"strategy {self.strategy_name!r} draws element masks")
        network = learner.network
        if not (hasattr(network, "sliced_call") and getattr(network, "supports_sliced_call",
                                                            True)):
            backbone = getattr(network, "backbone", network)
            problems.append(f"the network ({type(backbone).__name__}) has no sliced_call")
        else:
            # A layer with no kept channel would give zero-depth convolutions.
            try:
                lowest = float(self.keep_ratio_sampler.bounds()[0])
            except NotImplementedError:
                lowest = None
            if lowest is None:
                problems.append(f"{type(self.keep_ratio_sampler).__name__} has no bounds(), "
                                "so layers that keep no channel cannot be ruled out")
            else:
                emptied = sorted(layer.name for layer in network._flatten_layers(
                    include_self=False, recursive=True)
                    if isinstance(layer, keras.layers.Conv2D)
                    and np.round(lowest * layer.filters) < 1)
                if emptied:
                    problems.append(f"keep ratio {lowest} keeps no channel of {emptied}")
        if getattr(learner, "_jit_compile", None) is True:  # not resolving Keras's "auto"
            problems.append("XLA (jit_compile=True) needs static shapes, and the kept "
                            "channels are drawn at run time")
        return problems

    def executes_sliced(self, learner):
        """Whether `learner`'s sub-networks run on sliced weights (`width_execution`).

        Raises:
            ValueError: `width_execution="sliced"` and it cannot apply.
        """
        if self.width_execution == "masked":
            return False
        problems = self._sliced_problems(learner)
        if self.width_execution == "sliced" and problems:
            raise ValueError("MGAug width_execution='sliced' cannot run here: "
                             + "; ".join(problems) + ". Use width_execution='masked' "
                             "(the same function at full width) or 'auto'.")
        if problems:
            return False
        if self.width_execution == "auto":
            # Slicing pays only for narrow sub-networks (SLICED_AUTO_MAX_KEEP).
            return float(self.keep_ratio_sampler.bounds()[1]) <= SLICED_AUTO_MAX_KEEP
        return True

    def on_build(self, learner, image_shape):
        """Called when the learner learns its input size.

        Raises:
            ValueError: A resolution exceeds the image size or leaves the
                backbone an empty feature map.
        """
        self._check_resolutions(min(image_shape[0], image_shape[1]))
        backbone = getattr(learner.network, "backbone", learner.network)
        if self.resolutions and hasattr(backbone, "feature_grid"):
            empty = [size for size in self.resolutions if min(backbone.feature_grid(size, size)) < 1]
            if empty:
                raise ValueError(
                    f"MGAug resolutions {self.resolutions}: {empty} px give an empty feature map "
                    f"in {type(backbone).__name__} (its last feature map at {image_shape[0]} px "
                    f"is {backbone.feature_grid(image_shape[0], image_shape[1])}); use sizes "
                    "that survive its poolings (16 px or more for Conv4 and ResNet12).")

    def resolution_probabilities(self):
        """`{size: probability}` of one sub-network's resolution draw (uniform)."""
        if not self.resolutions:
            return {}
        return {size: self.resolutions.count(size) / len(self.resolutions)
                for size in self.resolutions}

    def metric_names(self):
        names = ["subnet_loss", "subnet_accuracy", "full_grad_norm", "augmented_grad_norm"]
        return names + [f"sparsity_{k}" for k in range(self.num_subnets)]

    # ------------------------------------------------------------------ draws
    def _task_seed(self, learner, task_index):
        """A stateless seed unique to (meta-step, global task index)."""
        context = tf.distribute.get_replica_context()
        replica = 0 if context is None else context.replica_id_in_sync_group
        global_task = (tf.cast(replica, tf.int64) * learner.tasks_per_replica
                       + tf.cast(task_index, tf.int64))
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, 0x5EED], tf.int64), tf.cast(learner.meta_step, tf.int64))
        return tf.random.experimental.stateless_fold_in(seed, global_task)

    def keep_ratios(self, task_seed):
        """The K sub-networks' keep ratios `[K]` of one task (stateless draw)."""
        return self.keep_ratio_sampler(
            self.num_subnets, tf.random.experimental.stateless_fold_in(task_seed, 1_000_003))

    def draw_subnet_masks(self, learner, task_seed, k, ratios, scores=None):
        """Sub-network k's masks (aligned with theta); `k` may be a scalar int tensor."""
        network = learner.network
        weights = functional.read_values(network.trainable_variables)
        prunable = masks_lib.prunable_weights(network, self.include_dense)
        subnet_seed = tf.random.experimental.stateless_fold_in(task_seed, k)
        return self.strategy(weights, prunable, ratios[k], seed=subnet_seed, scores=scores,
                             parity=self.parity)

    def draw_masks(self, learner, task_seed, scores=None):
        """Keep ratios `[K]` and the K sub-networks' masks (lists aligned with theta)."""
        ratios = self.keep_ratios(task_seed)
        return ratios, [self.draw_subnet_masks(learner, task_seed, k, ratios, scores)
                        for k in range(self.num_subnets)]

    def _resize(self, task, task_seed, k, keep=None):
        """Sub-network k's task at its resolution; `keep` (a bool tensor) keeps the task's own."""
        if not self.resolutions:
            return task
        if len(set(self.resolutions)) == 1:
            size = self.resolutions[0]  # static: the sub-network's graph has known shapes
        else:
            index = tf.random.stateless_uniform(
                [], seed=tf.random.experimental.stateless_fold_in(task_seed, 2_000_003 + k),
                maxval=len(self.resolutions), dtype=tf.int32)
            size = tf.gather(tf.constant(self.resolutions, tf.int32), index)

        def resize(images):
            if keep is None:
                return resize_images(images, size, self.resize_method)
            return tf.cond(keep, lambda: images,
                           lambda: resize_images(images, size, self.resize_method))

        return episodes_lib.Task(resize(task.support_images), task.support_labels,
                                 resize(task.query_images), task.query_labels)

    # ------------------------------------------------------------- gradients
    def task_gradients(self, learner, task, task_index, variables, accumulated,
                       loss_scale=None):
        """One task's meta-gradient: the full network's plus its sub-networks'.

        The full network (pass 0) and the K sub-networks (passes 1..K) run in
        one graph loop (`tf.while_loop`), so the per-task computation is
        traced once, not K + 1 times: pass 0 is the same masked computation
        with every mask entry 1 (exact: x * 1 = x) on the task's own images.
        Each pass takes its own gradient inside the loop body (nothing
        differentiates through the loop). Sub-network k's masks (and
        resolution) are drawn in the body from the full network's gradient,
        carried from pass 0, with the stateless seeds of (meta-step, task, k),
        so they equal `draw_masks`'s. Sliced `random_width` sub-networks run
        their full network outside the loop (a sliced pass that keeps every
        channel would gather whole kernels for nothing), so they trace it
        twice.

        Under `reduction="maxup"` only the worst sub-network's gradient is
        kept (the gradient of max_k L_k; on an exact tie the first worst,
        where `tf.reduce_max` would split it).

        Args:
            learner: The `MetaLearner` being trained.
            task: An `episodes.Task`.
            task_index: Index of the task in this replica's meta-batch (a
                Python int or a scalar int tensor).
            variables: `learner.trainable_variables`.
            accumulated: The meta-batch's gradients so far (for `parity`).
            loss_scale: Optional loss scale (mixed_float16): `accumulated`
                comes scaled by it, every objective is scaled by it and so are
                the returned gradients; scores and logs use unscaled values.

        Returns:
            `(gradients, logs, new_non_trainable)`: the combined gradients
            aligned with `variables`; per-task metric values (`loss` and
            `accuracy` of the full network, `subnet_loss`, `subnet_accuracy`,
            `full_grad_norm`, `augmented_grad_norm`, `sparsity_k`); the full
            network's new batch-norm statistics (`bn_mode="inductive"`),
            else `None`.
        """
        task_seed = self._task_seed(learner, task_index)
        subnets = self.num_subnets
        ratios = self.keep_ratios(task_seed)
        maxup = self.reduction == "maxup"
        loss_dtype = tf.float64 if learner.network.compute_dtype == "float64" else tf.float32
        sliced = self.executes_sliced(learner)
        scored = self.strategy_name in strategies_lib.SCORED
        positions = {id(variable): index for index, variable in enumerate(variables)}
        network_weights = learner.network.trainable_variables
        statistics = (functional.read_values(learner.network.non_trainable_variables)
                      if learner.bn_mode == "inductive" else [])
        statistics_seen = []

        def scores_of(full_gradients):
            if not scored:
                return []
            score_gradients = full_gradients
            if self.parity and learner.uses_inner_loop:
                score_gradients = [a + g for a, g in zip(accumulated, full_gradients)]
            score_gradients = unscale(score_gradients, loss_scale)
            return self._mask_scores(learner, [score_gradients[positions[id(variable)]]
                                               for variable in network_weights])

        def run_pass(index, is_full, state):
            """Pass `index`: the full network or sub-network `index - 1`.

            `is_full` is a Python bool where the pass is known when traced
            and the tensor `index == 0` inside the merged loop.
            """
            full_gradients, scores, augmented, worst, full_logs, new_statistics, arrays = state
            if is_full is True:
                masks, pass_task = None, task
            else:
                k = tf.maximum(index - 1, 0)
                masks = self.draw_subnet_masks(learner, task_seed, k, ratios,
                                               scores if scored else None)
                pass_task = self._resize(task, task_seed, k,
                                         keep=None if is_full is False else is_full)
                if is_full is not False:
                    masks = [None if mask is None else
                             tf.where(is_full, tf.ones_like(mask), mask) for mask in masks]
                if sliced:
                    masks = functional.SlicedMasks(masks)
            outcome, gradients = learner.task_gradients(pass_task, variables, masks=masks,
                                                        loss_scale=loss_scale)
            gradients = [tf.convert_to_tensor(gradient) for gradient in gradients]
            loss = tf.cast(outcome.query_loss, loss_dtype)
            pass_accuracy = accuracy(pass_task.query_labels, outcome.query_logits)
            full_gradients = _pick(is_full, gradients, full_gradients)
            if is_full is not False:
                scores = _pick(is_full, scores_of(gradients), scores)
            full_logs = _pick(is_full, [tf.cast(outcome.query_loss, tf.float32),
                                        pass_accuracy], full_logs)
            if statistics and outcome.new_non_trainable is not None:
                statistics_seen.append(True)
                new_statistics = _pick(is_full, list(outcome.new_non_trainable),
                                       new_statistics)
            if is_full is not True:
                if maxup:
                    better = loss > worst
                    if is_full is not False:
                        better = tf.logical_and(better, tf.logical_not(is_full))
                    augmented = [tf.where(better, gradient, total)
                                 for gradient, total in zip(gradients, augmented)]
                    worst = tf.where(better, loss, worst)
                else:
                    augmented = _pick(is_full, augmented,
                                      [total + gradient
                                       for total, gradient in zip(augmented, gradients)])
            values = (loss, pass_accuracy,
                      tf.constant(0.0) if masks is None
                      else masks_lib.sparsity(masks, network_weights))
            arrays = [array.write(index, value) for array, value in zip(arrays, values)]
            return (full_gradients, scores, augmented, worst, full_logs, new_statistics,
                    arrays)

        zeros = [tf.zeros_like(variable) for variable in variables]
        state = (zeros, [tf.zeros_like(weight) for weight in network_weights] if scored else [],
                 zeros, tf.constant(float("-inf"), loss_dtype),
                 [tf.constant(0.0), tf.constant(0.0)], statistics,
                 [tf.TensorArray(dtype, size=subnets + 1)
                  for dtype in (loss_dtype, tf.float32, tf.float32)])
        first = 0
        if sliced:
            state = run_pass(0, True, state)
            first = 1

        def body(index, *state):
            if sliced:
                is_full = False
            elif isinstance(index, int):  # unrolled: the pass is known when traced
                is_full = index == 0
            else:
                is_full = tf.equal(index, 0)
            return (index + 1,) + tuple(run_pass(index, is_full, state))

        final = sequential_loop(body, (first,) + tuple(state), subnets + 1 - first,
                                unroll=learner.unroll_loops)
        full_gradients, _, augmented, _, full_logs, new_statistics, arrays = final[1:]
        losses, accuracies, sparsities = (array.stack()[1:] for array in arrays)
        full, augmented = self._scale(full_gradients), self._scale(augmented)
        logs = {"loss": full_logs[0], "accuracy": full_logs[1],
                "subnet_loss": tf.reduce_mean(losses),
                "subnet_accuracy": tf.reduce_mean(accuracies),
                "full_grad_norm": tf.linalg.global_norm(unscale(full, loss_scale)),
                "augmented_grad_norm": tf.linalg.global_norm(unscale(augmented, loss_scale))}
        logs.update({f"sparsity_{k}": sparsities[k] for k in range(subnets)})
        return ([a + b for a, b in zip(full, augmented)], logs,
                new_statistics if statistics_seen else None)

    def _mask_scores(self, learner, network_gradients):
        """MMCA scores of the network's weights for scored strategies, else `None`.

        `network_gradients` are aligned with `learner.network.trainable_variables`.
        """
        if self.strategy_name not in strategies_lib.SCORED:
            return None
        return strategies_lib.mmca_scores(
            functional.read_values(learner.network.trainable_variables), network_gradients)

    def _task_masks(self, learner, task_seed, network_gradients):
        """The K sub-networks' masks of one task (scored by its gradients if needed)."""
        return self.draw_masks(learner, task_seed,
                               self._mask_scores(learner, network_gradients))[1]

    def _scale(self, gradients):
        if self.reduction != "mean":
            return list(gradients)
        scale = 1.0 / (self.num_subnets + 1)
        return [g * tf.cast(scale, g.dtype) for g in gradients]

    # ------------------------------------------------------------- saving
    def get_config(self):
        """The constructor arguments, for `.keras` saving (the sampler serialized).

        `image_size` is not kept: resolutions are checked again when the
        reloaded learner is built.
        """
        return {"strategy": self.strategy_name, "num_subnets": self.num_subnets,
                "reduction": self.reduction,
                "resolutions": None if self.resolutions is None else list(self.resolutions),
                "include_dense": self.include_dense,
                "keep_ratio_sampler": keras.saving.serialize_keras_object(
                    self.keep_ratio_sampler),
                "parity": self.parity, "seed": self.seed, "resize_method": self.resize_method,
                "flatten_head": self.flatten_head, "width_execution": self.width_execution}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["keep_ratio_sampler"] = keras.saving.deserialize_keras_object(
            config["keep_ratio_sampler"])
        return cls(**config)
