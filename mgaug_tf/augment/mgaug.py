"""MGAug: meta-gradient augmentation with pruned sub-networks.

For each task the learner computes the full network's meta-gradient; MGAug
then draws K keep ratios and K masks, runs each sub-network through the very
same per-task computation as the full network (`learner.task_outcome` with
masks, restarting from theta), and adds their meta-gradients.
"""

import collections
import dataclasses
from typing import TYPE_CHECKING, Any, Optional, Self, Sequence

import keras
import numpy as np
import tensorflow as tf

from mgaug_tf import checks, choices
from mgaug_tf import episodes as episodes_lib
from mgaug_tf import functional
from mgaug_tf import interpolation
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.augment import strategies as strategies_lib
from mgaug_tf.errors import ArgumentError
from mgaug_tf.learners.base import accuracy, sequential_loop, unscale

if TYPE_CHECKING:
    from mgaug_tf.learners.base import MetaLearner

# "auto" runs sliced only when no keep ratio exceeds this: slicing paid only
# for narrow sub-networks where it was measured (docs/performance.md,
# "Sliced random_width sub-networks").
SLICED_AUTO_MAX_KEEP = 0.5
RESIZE_METHODS = choices.RESIZE_METHODS
# The reference code's keep-ratio caps under `parity`.
PARITY_CAP = 0.999
PARITY_CAP_PROTONET = 0.99


@dataclasses.dataclass(frozen=True)
class MGAugSettings:
    """What an `MGAug` resolved for one learner (`MetaLearner.augmentation_settings`).

    One `MGAug` may serve several learners; what depends on the learner
    lives here, on the learner, instead of in the `MGAug` or the network.

    Attributes:
        flatten_head: The rule by which the learner's `FewShotClassifier`
            serves sub-networks' shorter features (passed to each call), or
            `None` where no resolution changes the head's input (no
            resolutions, ProtoNet, `pooling="avg"`).
        keep_ratio_sampler: The sampler of this learner's keep ratios: the
            `MGAug`'s own, or under `parity` a copy capped as the reference
            code caps (`PARITY_CAP_PROTONET` for ProtoNet, else `PARITY_CAP`).
    """

    flatten_head: Optional[str]
    keep_ratio_sampler: masks_lib.KeepRatioSampler


# One task's sub-networks as the meta-step draws them (`MGAug.draw_subnetworks`).
SubNetworks = collections.namedtuple("SubNetworks", ["keep_ratios", "masks", "tasks"])


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

    Raises:
        mgaug_tf.errors.ArgumentError: `method` is not one of `RESIZE_METHODS`.
    """
    if method not in RESIZE_METHODS:
        raise ArgumentError("method", method, f"must be one of {RESIZE_METHODS}")
    if method == "align_corners":
        return interpolation.resize_align_corners(images, size, size)
    target = tf.stack([size, size]) if isinstance(size, tf.Tensor) else [int(size)] * 2
    return tf.cast(tf.image.resize(images, target, method="bilinear"), images.dtype)


def _declared_example_shape(network):
    """The shape of one example that `network` declares before it is built, or None.

    A Sequential or functional model made on one `keras.Input` declares it;
    subclassed models and layers do not (their example shape is known at
    the learner's `build`).
    """
    try:
        inputs = network.inputs
    except (AttributeError, ValueError):
        return None
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)[1:]


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MGAug:
    """Meta-gradient augmentation, given to any learner as `augmentation=`.

    Args:
        strategy: `"random_width"`, `"random_param"`, `"catfish"` (MMCA,
            the paper's default) or `"snip"` (ablation).
        num_subnets: K, sub-networks per task (an integer >= 1).
        keep_range: `(keep_min, keep_max)` of the reference keep-ratio rule,
            with 0 < keep_min <= keep_max <= 1.
        reduction: `"sum"` (reference code: g = grad L_full + sum_k grad L_k),
            `"mean"` (the same divided by K + 1) or `"maxup"` (L_full +
            max_k L_k: only the worst sub-network back-propagates).
        resolutions: Optional sizes in pixels; each sub-network sees its
            task's support and query images resized bilinearly to one of them,
            drawn uniformly per sub-network (the full network is never
            resized; the reference code's "shot augmentation", e.g. (84, 64,
            48) at 84 px). Each must be at most the image size and at least
            the backbone's `min_input_size` (Conv4, ResNet12: 16 px). ProtoNet
            and `pooling="avg"` backbones take any size; a MAML-family
            learner with a flatten head needs `flatten_head` or `parity`.
        resize_method: How sub-network images are resized: `"align_corners"`
            (default; bilinear with corner pixels aligned, PyTorch's
            `interpolate(..., align_corners=True)` as in the reference code)
            or `"half_pixel"` (bilinear with half-pixel centres,
            `tf.image.resize`). The default is the reference's because
            resolutions exist to reproduce its released multi-resolution
            runs, the only evidence for them, and the two give different
            images. `parity=True` requires it.
        flatten_head: How a flatten head serves the shorter features of
            sub-networks at smaller resolutions (MAML family): `None` (refuse
            such resolutions), `"reference"` (the reference code's rule: the
            head kernel rows whose channels-first flatten index is below the
            sub-network's feature length; see
            `backbones.classifier.reference_head_rows`) or
            `"resize_features"` (resize the last feature map to the
            full-resolution grid before flattening; not in the reference).
            The learner passes it to its network's calls (the network's own
            `flatten_head` is not changed). `parity=True` implies
            `"reference"`.
        width_execution: How `random_width` sub-networks run: `"sliced"`
            (each convolution on the kept output channels and the previous
            layer's kept input channels, about r^2 of its FLOPs;
            `functional.SlicedMasks`, `Conv4.sliced_call`), `"masked"` (the
            full-width pass with the channel masks multiplied in) or
            `"auto"` (default: sliced where it applies and pays, i.e.
            `random_width` on a network with `sliced_call` (Conv4
            backbones), no XLA, and keep ratios of at most
            `SLICED_AUTO_MAX_KEEP` = 0.5, the range where it paid;
            masked otherwise). Both compute the same
            function, removed channels' bias and batch-norm constants
            included; float64 tests hold their losses and meta-gradients
            equal for every learner. `"sliced"` where it cannot apply (other
            strategies, ResNet-12, `jit_compile=True`, a
            smallest keep ratio that keeps no channel of some layer)
            raises `mgaug_tf.errors.ArgumentError`.
        image_size: Optional input size in pixels, to check `resolutions` at
            construction (otherwise they are checked when the learner is
            built).
        include_dense: Also prune every kernel that is not a convolution's:
            Dense, EinsumDense (MultiHeadAttention), LSTM/GRU/SimpleRNN kernel
            and recurrent kernel, Embedding (`masks.prunable_weights`;
            default: Conv1D/2D/3D kernels only). `random_width` prunes
            output units of Dense and convolution kernels only and refuses
            a network with other prunable kernels, naming the layer.
        keep_ratio_sampler: Overrides `keep_range` (e.g.
            `ConstantKeepRatio(0.9)`).
        parity: Reproduce the reference code's quirks: prune k - 1 entries
            (k = int(n * (1 - r))) with catfish/snip, score with the gradient
            buffer accumulated over the meta-batch's earlier tasks, cap
            keep ratios at 0.999 (0.99 for ProtoNet), resize with aligned
            corners and slice a flatten head by the reference rule. Needs
            `resize_method="align_corners"` and `flatten_head` None or
            `"reference"`.
        seed: Base seed of the mask and resolution draws.

    The object is never modified after construction, by this class or by
    the learners it serves: what depends on a learner is in that learner's
    `augmentation_settings` (`check_learner`).

    Raises:
        mgaug_tf.errors.ArgumentError: An argument out of its domain, named
            as above (`strategy`, `num_subnets`, `keep_range`, `reduction`,
            `resolutions`, `image_size`, `resize_method`, `flatten_head`,
            `width_execution`, `parity`); `check_learner` raises it for
            settings a learner cannot use.

    Example:
        >>> learner = MAML(FewShotClassifier(Conv4(), 5), n_way=5,
        ...                augmentation=MGAug("catfish", num_subnets=3))
    """

    def __init__(self, strategy: str = "catfish", num_subnets: int = 3,
                 keep_range: tuple[float, float] = (0.8, 1.0), reduction: str = "sum",
                 resolutions: Optional[Sequence[int]] = None, image_size: Optional[int] = None,
                 include_dense: bool = False,
                 keep_ratio_sampler: Optional[masks_lib.KeepRatioSampler] = None,
                 parity: bool = False, seed: int = 0, resize_method: str = "align_corners",
                 flatten_head: Optional[str] = None, width_execution: str = "auto") -> None:
        owner = "MGAug"
        self.strategy_name = strategy
        self.strategy = strategies_lib.get_strategy(strategy, owner=owner)
        checks.check_mgaug_arguments(
            num_subnets=num_subnets, keep_range=keep_range if keep_ratio_sampler is None else None,
            reduction=reduction, resolutions=resolutions, image_size=image_size,
            resize_method=resize_method, flatten_head=flatten_head, parity=parity,
            strategy=strategy, width_execution=width_execution, owner=owner)
        if keep_ratio_sampler is None:
            keep_ratio_sampler = masks_lib.ReferenceKeepRatios(*keep_range)
        self.keep_ratio_sampler = keep_ratio_sampler
        self.num_subnets = int(num_subnets)
        self.reduction = reduction
        self.resolutions = tuple(int(size) for size in resolutions) if resolutions else None
        self.width_execution = width_execution
        self.resize_method = resize_method
        self.flatten_head = "reference" if parity and flatten_head is None else flatten_head
        self.include_dense = include_dense
        self.parity = bool(parity)
        self.seed = int(seed)

    def check_learner(self, learner: "MetaLearner") -> MGAugSettings:
        """What this augmentation resolves for `learner`, or an error if it cannot serve it.

        Called by `MetaLearner.__init__`, which keeps the result as
        `learner.augmentation_settings`. Neither this object nor the
        learner's network is modified.

        Args:
            learner: The `MetaLearner` being constructed (its `network` set).

        Returns:
            An `MGAugSettings`.

        Raises:
            mgaug_tf.errors.ArgumentError: `resolutions` for a network whose
                examples are not images `(H, W, C)` (known here from its
                `keras.Input`, else at `on_build`), or with a MAML-family
                learner whose network is no `FewShotClassifier` with a
                `feature_grid` backbone; `resolutions` below the backbone's
                `min_input_size`; resolutions with a flatten head (a
                MAML-family learner whose backbone does not average-pool)
                and no `flatten_head` (argument `flatten_head`), or a
                `flatten_head` given for a
                backbone whose features are averaged (`pooling == "avg"`,
                e.g. `ResNet10`: no flatten head to apply it to; parity's
                implied "reference" is accepted); `width_execution="sliced"`
                where slicing cannot apply; nothing to prune, or a kernel
                `random_width` cannot prune (`_check_prunable`; checked
                here if the network is built, else by `on_build`).
        """
        from mgaug_tf.learners.protonet import ProtoNet  # pylint: disable=import-outside-toplevel
        network = learner.network
        backbone = getattr(network, "backbone", network)
        if self.resolutions:
            example_shape = getattr(learner, "example_shape", None) or _declared_example_shape(
                network)
            if example_shape is not None and len(example_shape) != 3:
                self._refuse_resolutions(network, example_shape)
        min_size = getattr(backbone, "min_input_size", None)
        if self.resolutions and min_size is not None and min(self.resolutions) < min_size:
            raise ArgumentError(
                "resolutions", self.resolutions,
                f"must be sizes of at least {type(backbone).__name__}'s min_input_size "
                f"({min_size} px; smaller images leave an empty feature map)", owner="MGAug")
        flatten_head = None
        pooling = getattr(backbone, "pooling", None)
        # An option that cannot apply is refused rather than ignored; "reference"
        # under parity is what parity implies, not a choice of the caller's.
        if pooling == "avg" and self.flatten_head is not None and not (
                self.parity and self.flatten_head == "reference"):
            raise ArgumentError(
                "flatten_head", self.flatten_head,
                f"must be None with {type(backbone).__name__}, whose features are averaged "
                "(pooling='avg', one length at every image size): there is no flatten head "
                "for it to apply to", owner="MGAug")
        if self.resolutions and not isinstance(learner, ProtoNet) and pooling != "avg":
            flatten_head = self._learner_flatten_head(learner, pooling)
        sampler = self.keep_ratio_sampler
        if self.parity and type(sampler) is masks_lib.ReferenceKeepRatios \
                and sampler.cap is None:
            cap = PARITY_CAP_PROTONET if isinstance(learner, ProtoNet) else PARITY_CAP
            sampler = masks_lib.ReferenceKeepRatios(sampler.keep_min, sampler.keep_max, cap=cap)
        if self.width_execution == "sliced":
            self._sliced(learner, sampler)  # raises where slicing cannot apply
        if network.built:  # else checked by on_build, once the weights exist
            self._check_prunable(network)
        return MGAugSettings(flatten_head=flatten_head, keep_ratio_sampler=sampler)

    def _check_prunable(self, network):
        """Refuses a network with nothing to prune, or kernels the strategy cannot prune.

        Raises:
            mgaug_tf.errors.ArgumentError: (argument `include_dense`) No
                convolution kernel and `include_dense=False`; (argument
                `network`) no kernel at all; (argument `strategy`)
                `random_width` and a prunable kernel that is not a Dense or
                convolution kernel (LSTM/GRU gates, attention, embeddings),
                naming its layer.
        """
        owners = masks_lib.prunable_kernels(network, self.include_dense)
        if not owners:
            if not self.include_dense:
                raise ArgumentError(
                    "include_dense", self.include_dense,
                    f"must be True for network {network.name!r}, which has no convolution "
                    "kernel to prune (the default prunes Conv1D/2D/3D kernels only); "
                    "include_dense=True prunes its Dense, recurrent, attention and embedding "
                    "kernels", owner="MGAug")
            raise ArgumentError("network", network.name,
                                "must have a kernel for MGAug to prune (Dense, convolution, "
                                "recurrent, attention or embedding); it has none",
                                owner="MGAug")
        if self.strategy_name == "random_width":
            for variable in network.trainable_variables:
                layer = owners.get(id(variable))
                if layer is None:
                    continue
                unit_layer = isinstance(layer, keras.layers.Dense) or masks_lib.is_convolution(
                    layer)
                if not (unit_layer and variable is getattr(layer, "kernel", None)):
                    raise ArgumentError(
                        "strategy", self.strategy_name,
                        f"cannot prune layer {layer.name!r} ({type(layer).__name__}): "
                        "random_width removes output units of Dense and convolution kernels "
                        "only; use random_param or catfish (which prune any kernel's entries), "
                        "or include_dense=False", owner="MGAug")

    def _refuse_resolutions(self, network, example_shape):
        """Raises `ArgumentError` (argument `resolutions`) for examples that are not images."""
        raise ArgumentError(
            "resolutions", self.resolutions,
            f"must be None for network {network.name!r}, whose examples have shape "
            f"{tuple(example_shape)}: resolutions resize images (H, W, C), and these examples "
            "are not images", owner="MGAug")

    def _learner_flatten_head(self, learner, pooling):
        """The flatten head a MAML-family learner with a flatten head uses for `resolutions`."""
        network = learner.network
        backbone = getattr(network, "backbone", None)
        if not hasattr(network, "head_features") or not hasattr(backbone, "feature_grid"):
            # Whatever `flatten_head` says: no head rule can serve this network.
            raise ArgumentError(
                "resolutions", self.resolutions,
                f"must be None for network {network.name!r} ({type(network).__name__}) with "
                f"{type(learner).__name__}: resolutions resize images (H, W, C), and a "
                "MAML-family learner needs a FewShotClassifier whose backbone has "
                "feature_grid (Conv4, ResNet12) to run its head on the smaller feature maps; "
                "ProtoNet takes resolutions with any image network", owner="MGAug")
        if self.flatten_head is None:
            raise ArgumentError(
                "flatten_head", None,
                "must be 'reference' (the reference code's rule; parity=True implies it) or "
                f"'resize_features' for resolutions={self.resolutions} with a flatten head "
                f"(learner {type(learner).__name__}, backbone pooling={pooling!r}): the head's "
                "input length changes with the image size. Otherwise build the backbone with "
                "pooling='avg' (ProtoNet accepts any resolutions)", owner="MGAug")
        if network.flatten_head not in (None, self.flatten_head):
            raise ArgumentError(
                "flatten_head", self.flatten_head,
                f"must agree with the network's flatten_head={network.flatten_head!r}",
                owner="MGAug")
        return self.flatten_head

    def _settings(self, learner):
        """`learner`'s `MGAugSettings` (resolved now if the learner holds none)."""
        settings = getattr(learner, "augmentation_settings", None)
        return self.check_learner(learner) if settings is None else settings

    def _sliced_problems(self, learner, sampler):
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
                lowest = float(sampler.bounds()[0])
            except NotImplementedError:
                lowest = None
            if lowest is None:
                problems.append(f"{type(sampler).__name__} has no bounds(), "
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

    def _sliced(self, learner, sampler):
        """Whether sub-networks run sliced, given the keep-ratio sampler (see `executes_sliced`)."""
        if self.width_execution == "masked":
            return False
        problems = self._sliced_problems(learner, sampler)
        if self.width_execution == "sliced" and problems:
            raise ArgumentError(
                "width_execution", self.width_execution,
                "must be 'masked' (the same function at full width) or 'auto' here, because "
                "sliced execution cannot run: " + "; ".join(problems), owner="MGAug")
        if problems:
            return False
        if self.width_execution == "auto":
            # Slicing pays only for narrow sub-networks (SLICED_AUTO_MAX_KEEP).
            return float(sampler.bounds()[1]) <= SLICED_AUTO_MAX_KEEP
        return True

    def executes_sliced(self, learner: "MetaLearner") -> bool:
        """Whether `learner`'s sub-networks run on sliced weights (`width_execution`).

        Raises:
            mgaug_tf.errors.ArgumentError: `width_execution="sliced"` and it
                cannot apply (e.g. after `compile(jit_compile=True)`).
        """
        return self._sliced(learner, self._settings(learner).keep_ratio_sampler)

    def on_build(self, learner: "MetaLearner", example_shape: tuple[int, ...]) -> None:
        """Called when the learner learns its example shape (`(H, W, C)` for images).

        Raises:
            mgaug_tf.errors.ArgumentError: (argument `resolutions`) A
                resolution exceeds the image size, or resolutions for
                examples that are not images `(H, W, C)`; what
                `_check_prunable` refuses.
        """
        if self.resolutions and len(example_shape) != 3:
            self._refuse_resolutions(learner.network, example_shape)
        if len(example_shape) == 3:
            checks.check_resolutions(self.resolutions, min(example_shape[0], example_shape[1]))
        self._check_prunable(learner.network)

    def resolution_probabilities(self) -> dict[int, float]:
        """`{size: probability}` of one sub-network's resolution draw (uniform)."""
        if not self.resolutions:
            return {}
        return {size: self.resolutions.count(size) / len(self.resolutions)
                for size in self.resolutions}

    def metric_names(self, learner: "MetaLearner") -> list[str]:
        """The names of what `task_gradients` logs for `learner`, beside `loss` and `accuracy`.

        A regression learner (`learner.objective`) has no `subnet_accuracy`.
        """
        names = ["subnet_loss", "subnet_accuracy", "full_grad_norm", "augmented_grad_norm"]
        if learner.objective != "classification":
            names.remove("subnet_accuracy")
        return names + [f"sparsity_{k}" for k in range(self.num_subnets)]

    # ------------------------------------------------------------------ draws
    def task_seed(self, learner: "MetaLearner", task_index: Any) -> tf.Tensor:
        """The stateless seed of one task's draws at the learner's current meta-step.

        Unique to (MGAug `seed`, `learner.meta_step`, global task index),
        the same on every replica and on resume.

        Args:
            learner: A built `MetaLearner` that has seen an episode batch
                (`tasks_per_replica` set).
            task_index: Index of the task in this replica's meta-batch (an
                int or a scalar int tensor).

        Returns:
            An int64 `[2]` seed tensor.
        """
        context = tf.distribute.get_replica_context()
        replica = 0 if context is None else context.replica_id_in_sync_group
        global_task = (tf.cast(replica, tf.int64) * learner.tasks_per_replica
                       + tf.cast(task_index, tf.int64))
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, 0x5EED], tf.int64), tf.cast(learner.meta_step, tf.int64))
        return tf.random.experimental.stateless_fold_in(seed, global_task)

    def keep_ratios(self, learner: "MetaLearner", task_seed: tf.Tensor) -> tf.Tensor:
        """The K sub-networks' keep ratios, a float64 `[K]` tensor (stateless draw).

        Drawn by `learner`'s sampler (`MGAugSettings.keep_ratio_sampler`)
        from `task_seed` (`task_seed()`).
        """
        return self._settings(learner).keep_ratio_sampler(
            self.num_subnets, tf.random.experimental.stateless_fold_in(task_seed, 1_000_003))

    def draw_subnet_masks(self, learner: "MetaLearner", task_seed: tf.Tensor, k: Any,
                          ratios: tf.Tensor, scores: Optional[Sequence[tf.Tensor]] = None,
                          ranks: Optional[Sequence[Optional[tf.Tensor]]] = None
                          ) -> list[tf.Tensor]:
        """Sub-network k's masks (aligned with theta); `k` may be a scalar int tensor.

        `ranks` (scored strategies): `score_ranks(learner, scores)`, computed
        once for a task's K draws; otherwise ranked here from `scores`.
        """
        network = learner.network
        weights = functional.read_values(network.trainable_variables)
        prunable = masks_lib.prunable_weights(network, self.include_dense)
        subnet_seed = tf.random.experimental.stateless_fold_in(task_seed, k)
        return self.strategy(weights, prunable, ratios[k], seed=subnet_seed, scores=scores,
                             parity=self.parity, ranks=ranks)

    def score_ranks(self, learner: "MetaLearner", scores: Sequence[tf.Tensor]
                    ) -> list[Optional[tf.Tensor]]:
        """The order in which a scored strategy prunes each weight's entries (int32 ranks).

        Args:
            learner: The learner served (its network's prunable weights).
            scores: MMCA scores aligned with `learner.network.trainable_variables`.

        Returns:
            One int32 tensor of each weight's shape per prunable weight (0:
            pruned first), `None` for the others.
        """
        prunable = masks_lib.prunable_weights(learner.network, self.include_dense)
        return strategies_lib.SCORE_RANKS[self.strategy_name](scores, prunable)

    def draw_subnetworks(self, learner: "MetaLearner", task_seed: tf.Tensor,
                         network_gradients: Optional[Sequence[tf.Tensor]] = None,
                         task: Optional[episodes_lib.Task] = None) -> SubNetworks:
        """One task's K sub-networks, exactly as the meta-step draws them.

        For inspection and tests: `task_gradients` draws the same keep
        ratios, masks and resolutions from the same seeds inside its loop.

        Args:
            learner: A built `MetaLearner` served by this augmentation.
            task_seed: The task's seed (`task_seed(learner, task_index)`).
            network_gradients: For scored strategies (catfish, snip): the
                full network's meta-gradient, aligned with
                `learner.network.trainable_variables`, from which the scores
                are computed (with `parity`, the meta-step scores the
                meta-batch's accumulated gradient plus this task's; pass
                that sum). Ignored by random strategies; required by scored
                ones.
            task: Optional `episodes.Task` to resize to each sub-network's
                drawn resolution.

        Returns:
            `SubNetworks(keep_ratios, masks, tasks)`: float64 `[K]` keep
            ratios; K lists of masks aligned with
            `learner.network.trainable_variables` (`None` for weights that
            are not pruned); K `episodes.Task`s at their resolutions (the
            task itself without `resolutions`), or `None` without `task`.

        Raises:
            ValueError: A scored strategy and no `network_gradients`.
        """
        scores = None
        if self.strategy_name in strategies_lib.SCORED:
            if network_gradients is None:
                raise ValueError(f"MGAug strategy {self.strategy_name!r} scores weights by "
                                 "the full network's gradient: pass network_gradients.")
            scores = self._mask_scores(learner, network_gradients)
        ratios = self.keep_ratios(learner, task_seed)
        masks = [self.draw_subnet_masks(learner, task_seed, k, ratios, scores)
                 for k in range(self.num_subnets)]
        tasks = None if task is None else [self._resize(task, task_seed, k)
                                           for k in range(self.num_subnets)]
        return SubNetworks(ratios, masks, tasks)

    def subnet_resolution(self, task_seed: tf.Tensor, k: Any) -> Any:
        """Sub-network k's input size in pixels, drawn uniformly from `resolutions`.

        Args:
            task_seed: The task's seed (`task_seed(learner, task_index)`).
            k: The sub-network's index, a Python int or a scalar int tensor.

        Returns:
            The size: a Python int when `resolutions` holds one distinct size
            (the sub-networks' graph then has static shapes), else a scalar
            int32 tensor drawn from `task_seed` and `k`; `None` without
            `resolutions`.
        """
        if not self.resolutions:
            return None
        if len(set(self.resolutions)) == 1:
            return self.resolutions[0]
        index = tf.random.stateless_uniform(
            [], seed=tf.random.experimental.stateless_fold_in(task_seed, 2_000_003 + k),
            maxval=len(self.resolutions), dtype=tf.int32)
        return tf.gather(tf.constant(self.resolutions, tf.int32), index)

    def _resize(self, task, task_seed, k):
        """Sub-network k's task at its resolution (`k` a Python int or a scalar int tensor)."""
        size = self.subnet_resolution(task_seed, k)
        if size is None:
            return task

        def resize(images):
            return resize_images(images, size, self.resize_method)

        return episodes_lib.Task(resize(task.support_images), task.support_labels,
                                 resize(task.query_images), task.query_labels)

    # ------------------------------------------------------------- gradients
    def task_gradients(self, learner: "MetaLearner", task: episodes_lib.Task, task_index: Any,
                       variables: Sequence[tf.Variable], accumulated: Sequence[tf.Tensor],
                       loss_scale: Optional[tf.Tensor] = None
                       ) -> tuple[list[tf.Tensor], dict[str, tf.Tensor], Any]:
        """One task's meta-gradient: the full network's plus its sub-networks'.

        The full network (pass 0) runs first, unmasked; the K sub-networks
        (passes 1..K) then run in one graph loop (`tf.while_loop`), so their
        computation is traced once, not K times. Keeping the full pass out of
        the loop lets it skip what only sub-networks need (mask draws and
        products, resizing) and gives the loop body static shapes when the
        resolution is fixed. Each pass takes its own gradient (nothing
        differentiates through the loop). Sub-network k's masks (and
        resolution) are drawn in the body from the full network's gradient
        with the stateless seeds of (meta-step, task, k), so they equal
        `draw_subnetworks`'s.

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
            `full_grad_norm`, `augmented_grad_norm`, `sparsity_k`; no
            accuracies for a regression learner); the full
            network's new batch-norm statistics (`bn_mode="inductive"`),
            else `None`.
        """
        task_seed = self.task_seed(learner, task_index)
        subnets = self.num_subnets
        ratios = self.keep_ratios(learner, task_seed)
        maxup = self.reduction == "maxup"
        loss_dtype = tf.float64 if learner.network.compute_dtype == "float64" else tf.float32
        sliced = self.executes_sliced(learner)
        scored = self.strategy_name in strategies_lib.SCORED
        classification = learner.objective == "classification"
        positions = {id(variable): index for index, variable in enumerate(variables)}
        network_weights = learner.network.trainable_variables
        keep_statistics = learner.bn_mode == "inductive"

        def scores_of(full_gradients):
            score_gradients = full_gradients
            if self.parity and learner.uses_inner_loop:
                score_gradients = [a + g for a, g in zip(accumulated, full_gradients)]
            score_gradients = unscale(score_gradients, loss_scale)
            return self._mask_scores(learner, [score_gradients[positions[id(variable)]]
                                               for variable in network_weights])

        def run_pass(pass_task, masks):
            """`(outcome, gradients, loss, accuracy)` of one pass (masks `None`: the full one)."""
            outcome, gradients = learner.task_gradients(pass_task, variables, masks=masks,
                                                        loss_scale=loss_scale)
            gradients = [tf.convert_to_tensor(gradient) for gradient in gradients]
            # Regression has no accuracy: a constant keeps the loop state's structure.
            pass_accuracy = (accuracy(pass_task.query_labels, outcome.query_logits)
                             if classification else tf.constant(0.0))
            return outcome, gradients, tf.cast(outcome.query_loss, loss_dtype), pass_accuracy

        full_outcome, full_gradients, _, full_accuracy = run_pass(task, None)
        scores = ranks = None
        if scored:  # one ranking serves the task's K draws
            scores = scores_of(full_gradients)
            ranks = self.score_ranks(learner, scores)

        def body(k, augmented, worst, arrays):
            masks = self.draw_subnet_masks(learner, task_seed, k, ratios, scores, ranks)
            pass_task = self._resize(task, task_seed, k)
            _, gradients, loss, pass_accuracy = run_pass(
                pass_task, functional.SlicedMasks(masks) if sliced else masks)
            if maxup:
                better = loss > worst
                augmented = [tf.where(better, gradient, total)
                             for gradient, total in zip(gradients, augmented)]
                worst = tf.where(better, loss, worst)
            else:
                augmented = [total + gradient for total, gradient in zip(augmented, gradients)]
            values = (loss, pass_accuracy, masks_lib.sparsity(masks, network_weights))
            arrays = [array.write(k, value) for array, value in zip(arrays, values)]
            return k + 1, augmented, worst, arrays

        state = (0, [tf.zeros_like(variable) for variable in variables],
                 tf.constant(float("-inf"), loss_dtype),
                 [tf.TensorArray(dtype, size=subnets)
                  for dtype in (loss_dtype, tf.float32, tf.float32)])
        _, augmented, _, arrays = sequential_loop(body, state, subnets,
                                                  unroll=learner.unroll_loops)
        losses, accuracies, sparsities = (array.stack() for array in arrays)
        full, augmented = self._scale(full_gradients), self._scale(augmented)
        logs = {"loss": tf.cast(full_outcome.query_loss, tf.float32),
                "subnet_loss": tf.reduce_mean(losses),
                "full_grad_norm": tf.linalg.global_norm(unscale(full, loss_scale)),
                "augmented_grad_norm": tf.linalg.global_norm(unscale(augmented, loss_scale))}
        if classification:
            logs.update(accuracy=full_accuracy, subnet_accuracy=tf.reduce_mean(accuracies))
        logs.update({f"sparsity_{k}": sparsities[k] for k in range(subnets)})
        new_statistics = full_outcome.new_non_trainable if keep_statistics else None
        return ([a + b for a, b in zip(full, augmented)], logs,
                None if new_statistics is None else list(new_statistics))

    def _mask_scores(self, learner, network_gradients):
        """MMCA scores of the network's weights for scored strategies, else `None`.

        `network_gradients` are aligned with `learner.network.trainable_variables`.
        """
        if self.strategy_name not in strategies_lib.SCORED:
            return None
        return strategies_lib.mmca_scores(
            functional.read_values(learner.network.trainable_variables), network_gradients)

    def _scale(self, gradients):
        if self.reduction != "mean":
            return list(gradients)
        # tf.constant, not tf.cast: a Python float cast goes through float32
        # (1/3 to 3e-8), which float64 gradients would inherit.
        return [g * tf.constant(1.0 / (self.num_subnets + 1), g.dtype) for g in gradients]

    # ------------------------------------------------------------- saving
    def get_config(self) -> dict[str, Any]:
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
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        config["keep_ratio_sampler"] = keras.saving.deserialize_keras_object(
            config["keep_ratio_sampler"])
        return cls(**config)
