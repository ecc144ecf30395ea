"""Learners and MGAug on ResNet-10: second-order meta-gradients, the reference mask rule, saving."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import export
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.augment import strategies
from mgaug_tf.backbones.resnet10 import ResNet10
from mgaug_tf.errors import ArgumentError
from mgaug_tf.gradient_check import FiniteDifferences
from tests.augment import invariants
from tests.conftest import make_episode_batch

SMALL_WIDTHS = (4, 8, 8, 8)
# The reference pool's smallest input (a 5 x 5 last map); odd, so every
# strided layer floors.
SIZE = 129
# The masked convolutions in network order with their sizes at full width
# (the reference's `is_mask_layer`: every nn.Conv2d in `modules()` order).
REFERENCE_CONVOLUTIONS = [
    ("stem_conv", 7 * 7 * 3 * 64),
    ("block0/conv1", 3 * 3 * 64 * 64), ("block0/conv2", 3 * 3 * 64 * 64),
    ("block1/conv1", 3 * 3 * 64 * 128), ("block1/conv2", 3 * 3 * 128 * 128),
    ("block1/shortcut_conv", 64 * 128),
    ("block2/conv1", 3 * 3 * 128 * 256), ("block2/conv2", 3 * 3 * 256 * 256),
    ("block2/shortcut_conv", 128 * 256),
    ("block3/conv1", 3 * 3 * 256 * 512), ("block3/conv2", 3 * 3 * 512 * 512),
    ("block3/shortcut_conv", 256 * 512)]


def make_learner(kind="maml", augmentation=None, final_pool="reference", size=SIZE,
                 dtype="float64", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = ResNet10(widths=SMALL_WIDTHS, final_pool=final_pool, dtype=dtype)
    if kind == "protonet":
        learner = mg.ProtoNet(backbone, 3, augmentation=augmentation)
    else:
        settings = dict(inner_lr=0.1, inner_steps=2)
        settings.update(kwargs)
        learner = mg.registry.learner_class(kind)(mg.FewShotClassifier(backbone, 3), 3,
                                                  augmentation=augmentation, **settings)
    learner.build((size, size, 3))
    return learner


def batch_of(seed=0, size=SIZE, dtype="float64", tasks=1):
    return make_episode_batch(seed, tasks=tasks, n_way=3, k_shot=1, k_query=1, size=size,
                              channels=3, dtype=dtype)


def layer_name(variable):
    """"block1/shortcut_conv" of ".../res_net10_3/block1/shortcut_conv/kernel"."""
    return re.sub(r"^.*res_net10[^/]*/", "", variable.path).rsplit("/", 1)[0]


# ------------------------------------------------ finite differences (float64)
# The meta-loss is piecewise smooth (ReLU and max-pool winners flip); a step
# of 1e-6 along a random direction of all weights straddled such a flip here
# (relative error ~1), 1e-7 does not, and float64 rounding stays far below
# the tolerance (as in tests/augment/test_resolutions.py).
FD_EPSILON = 1e-7


def test_second_order_maml_meta_gradient_matches_finite_differences():
    """MAML through ResNet-10 (reference pool, 129 px, 2 inner steps), float64."""
    learner = make_learner("maml")
    batch = batch_of(3)
    # Eager: tracing the second-order graph costs more than running it once.
    gradients = learner.compute_meta_gradients(batch)[1]
    assert all(g.dtype == tf.float64 for g in gradients)
    differences = FiniteDifferences(learner, batch, epsilon=FD_EPSILON)
    errors = [differences.directional(gradients, seed)[2] for seed in range(2)]
    names = [v.path for v in learner.trainable_variables]
    for name in ("stem_conv/kernel", "block2/shortcut_conv/kernel", "block3/bn2/gamma",
                 "head/bias"):
        index = next(i for i, path in enumerate(names) if path.endswith(name))
        errors.append(differences.coordinate(gradients, index, 1)[2])
    print(f"finite-difference relative errors: {['%.1e' % e for e in errors]}")
    assert max(errors) < 1e-6, errors


# ------------------------------------------------------------ MGAug invariants
@pytest.mark.parametrize("kind", ["maml", pytest.param("protonet", marks=pytest.mark.slow)])
def test_keep_ratio_one_gives_the_plain_meta_gradient(kind):
    batch = batch_of(1, size=33)
    plain = make_learner(kind, final_pool="global", size=33)
    augmented = make_learner(kind, mg.MGAug("catfish", num_subnets=2, keep_range=(1.0, 1.0),
                                            reduction="mean"), final_pool="global", size=33)
    invariants.copy_weights(plain, augmented)
    _, want = plain.compute_meta_gradients(batch)
    _, got = augmented.compute_meta_gradients(batch)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("strategy", ["catfish", pytest.param("random_width",
                                                             marks=pytest.mark.slow)])
def test_pruned_kernel_entries_get_zero_gradient_and_zero_inner_update(strategy):
    learner = make_learner("maml", mg.MGAug(strategy, keep_range=(0.6, 0.6)),
                           final_pool="global", size=33)
    task = learner._split_tasks(batch_of(2, size=33))[0]
    masked = [layer_name(variable)
              for variable in invariants.assert_pruned_entries_stay_frozen(learner, task, 2)]
    assert masked == [name for name, _ in REFERENCE_CONVOLUTIONS]


def test_catfish_prunes_the_reference_count_in_every_convolution():
    """Full widths: 12 convolution kernels incl. the 3 shortcuts, never the head or batch norm.

    The reference (`get_mask_layer`, `-small`) keeps scores <= the k-th
    largest, k = int(n * (1 - r)): k - 1 pruned entries (`parity`); the clean
    rule (n - round(r * n)) is tests/augment/test_masks.py's.
    """
    keras.utils.set_random_seed(0)
    network = mg.FewShotClassifier(ResNet10(final_pool="reference"), 5)
    network.build((None, 224, 224, 3))
    weights = network.trainable_variables
    prunable = masks_lib.prunable_weights(network)
    rng = np.random.default_rng(0)
    # Distinct scores (a permutation, exact in float32): no ties to break.
    scores = [tf.constant(rng.permutation(int(np.prod(w.shape))).reshape(w.shape), w.dtype)
              for w in weights]
    layers = [(layer_name(w), int(np.prod(w.shape))) for w, p in zip(weights, prunable) if p]
    assert layers == REFERENCE_CONVOLUTIONS
    for keep_ratio, parity in ((0.98, True), (0.97, True)):
        masks = strategies.catfish(weights, prunable, tf.constant(keep_ratio, tf.float64),
                                   scores=scores, parity=parity)
        for weight, mask, score in zip(weights, masks, scores):
            if mask is None:
                continue
            size = int(np.prod(weight.shape))
            want = int(size * (1 - keep_ratio)) - 1
            pruned = np.asarray(mask) == 0
            assert pruned.sum() == want, (weight.path, keep_ratio, parity)
            # The highest scores go.
            assert np.asarray(score)[pruned].min() > np.asarray(score)[~pruned].max()


def test_random_width_runs_masked_and_sliced_is_refused_naming_the_backbone():
    learner = make_learner("fomaml", mg.MGAug("random_width", keep_range=(0.5, 0.5)),
                           final_pool="global", size=33, dtype="float32")
    assert not learner.augmentation.executes_sliced(learner)
    _, gradients = learner.compute_meta_gradients(batch_of(4, size=33, dtype="float32"))
    assert all(np.isfinite(g).all() for g in gradients)
    with pytest.raises(ArgumentError, match=r"ResNet10\) has no sliced_call") as error:
        make_learner("fomaml", mg.MGAug("random_width", keep_range=(0.5, 0.5),
                                        width_execution="sliced"),
                     final_pool="global", size=33, dtype="float32")
    assert error.value.argument == "width_execution"


# ------------------------------------------------------------------ resolutions
RELEASED_RESOLUTIONS = (224, 192, 160, 140)


def test_released_resolutions_resize_with_aligned_corners_and_keep_the_feature_length():
    augmentation = mg.MGAug("catfish", num_subnets=3, keep_range=(0.98, 1.0),
                            resolutions=RELEASED_RESOLUTIONS, image_size=224, parity=True)
    learner = make_learner("maml", augmentation, size=224, dtype="float32")
    assert learner.augmentation_settings.flatten_head is None  # no head rows to choose
    task = learner._split_tasks(batch_of(5, size=224, dtype="float32"))[0]
    gradients = [tf.ones_like(v) for v in learner.network.trainable_variables]
    seen = set()
    for task_index in range(4):
        subnets = augmentation.draw_subnetworks(
            learner, augmentation.task_seed(learner, task_index), gradients, task)
        for sub_task in subnets.tasks:
            size = sub_task.support_images.shape[1]
            seen.add(size)
            want = mg.augment.mgaug.resize_images(task.support_images, size, "align_corners")
            np.testing.assert_array_equal(sub_task.support_images, want)
            assert learner.network.backbone(sub_task.query_images).shape == (3, 8)
    assert seen <= set(RELEASED_RESOLUTIONS) and len(seen) >= 2


def test_resolution_too_small_for_the_reference_pool_is_refused_before_any_work():
    with pytest.raises(ArgumentError, match=r"at least ResNet10's min_input_size \(129 px") \
            as error:
        make_learner("fomaml", mg.MGAug("catfish", resolutions=(224, 128)), size=224,
                     dtype="float32")
    assert error.value.argument == "resolutions"
    # The global pool takes it.
    make_learner("fomaml", mg.MGAug("catfish", resolutions=(224, 128)), final_pool="global",
                 size=224, dtype="float32")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fomaml", "protonet"])
def test_released_mgaug_step_at_224_px(kind):
    augmentation = mg.MGAug("catfish", num_subnets=3, keep_range=(0.98, 1.0),
                            resolutions=RELEASED_RESOLUTIONS, parity=True)
    learner = make_learner(kind, augmentation, size=224, dtype="float32")
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = tf.data.Dataset.from_tensors(batch_of(6, size=224, dtype="float32"))
    logs = {name: values[-1] for name, values in
            learner.fit(dataset, epochs=1, verbose=0).history.items()}
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["subnet_loss"])


@pytest.mark.parametrize("kind", ["fomaml", "protonet"])
@pytest.mark.parametrize("flatten_head, resolutions",
                         [("reference", None), ("resize_features", (33, 24))])
def test_a_flatten_head_option_is_refused_for_averaged_features(kind, flatten_head,
                                                                resolutions):
    augmentation = mg.MGAug("catfish", resolutions=resolutions, flatten_head=flatten_head)
    with pytest.raises(ArgumentError, match=r"must be None with ResNet10, whose features are "
                       r"averaged") as error:
        make_learner(kind, augmentation, final_pool="global", size=33, dtype="float32")
    assert (error.value.argument, error.value.value) == ("flatten_head", flatten_head)


def test_parity_implies_the_reference_head_rule_without_refusal():
    """parity=True sets flatten_head='reference' itself; given or implied, it is not used."""
    for flatten_head in (None, "reference"):
        augmentation = mg.MGAug("catfish", resolutions=(33, 24), parity=True,
                                flatten_head=flatten_head)
        assert augmentation.flatten_head == "reference"
        learner = make_learner("fomaml", augmentation, final_pool="global", size=33,
                               dtype="float32")
        assert learner.augmentation_settings.flatten_head is None


# ------------------------------------------------------------------ saving
@pytest.mark.parametrize("kind", ["maml", "protonet"])
def test_keras_file_round_trip(tmp_path, kind):
    learner = make_learner(kind, mg.MGAug("catfish", num_subnets=1), final_pool="reference",
                           dtype="float32")
    for variable in learner.non_trainable_variables:  # moving statistics, meta_step
        variable.assign(variable + tf.cast(2, variable.dtype))
    path = str(tmp_path / "learner.keras")
    learner.save(path)
    restored = keras.saving.load_model(path)
    backbone = getattr(restored.network, "backbone", restored.network)
    assert type(backbone) is ResNet10 and backbone.final_pool == "reference"
    assert backbone.widths == SMALL_WIDTHS
    assert json.dumps(restored.get_config(), sort_keys=True, default=str) == json.dumps(
        learner.get_config(), sort_keys=True, default=str)
    for got, want in zip(restored.variables, learner.variables):
        np.testing.assert_array_equal(got, want)
    (support, support_labels, query), _ = batch_of(7, dtype="float32")
    np.testing.assert_array_equal(
        restored.adapt_and_predict(support[0], support_labels[0], query[0]),
        learner.adapt_and_predict(support[0], support_labels[0], query[0]))


# The global pool takes any size: a tiny image keeps the export cheap.
EXPORT_SIZE = 16


# The MAML-family export (inner loop in the graph) runs by default; ProtoNet's
# export costs as much again and is marked slow.
@pytest.mark.parametrize("kind", ["maml", pytest.param("protonet", marks=pytest.mark.slow)])
def test_saved_model_few_shot_inference_equals_the_learner(tmp_path, kind):
    """The SavedModel's float and uint8 signatures adapt and classify as `adapt_and_predict`."""
    settings = {} if kind == "protonet" else {"eval_inner_steps": 1}
    learner = make_learner(kind, mg.MGAug("catfish", num_subnets=1), final_pool="global",
                           size=EXPORT_SIZE, dtype="float32", **settings)
    rng = np.random.default_rng(8)
    for variable in learner.non_trainable_variables:  # moving statistics
        if variable.path.endswith(("moving_mean", "moving_variance")):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    preprocessing = export.InputPreprocessing(
        channels=3, reader_size=(EXPORT_SIZE, EXPORT_SIZE), invert=False,
        image_size=(EXPORT_SIZE, EXPORT_SIZE))
    export_dir = str(tmp_path / "export")
    export.export_saved_model(learner, export_dir, preprocessing)
    model = tf.saved_model.load(export_dir)
    support_labels = tf.constant([2, 0, 1, 1, 0, 2], tf.int32)
    images = rng.uniform(-1, 2, (6 + 4, EXPORT_SIZE, EXPORT_SIZE, 3)).astype("float32")
    want = learner.adapt_and_predict(images[:6], support_labels, images[6:]).numpy()
    assert want.shape == (4, 3) and np.ptp(want) > 0
    got = model.signatures[export.PREPROCESSED_KEY](
        support_images=tf.constant(images[:6]), support_labels=support_labels,
        query_images=tf.constant(images[6:]))
    np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["predictions"], want.argmax(-1))
    # uint8 pixels: the graph's own preprocessing, then the same adaptation.
    pixels = tf.constant(rng.integers(0, 256, (6 + 4, EXPORT_SIZE, EXPORT_SIZE, 3)), tf.uint8)
    preprocessed = model.signatures[export.PREPROCESS_UINT8_KEY](images=pixels)["images"]
    np.testing.assert_allclose(preprocessed, pixels.numpy() / 255, rtol=0, atol=1e-7)
    want = learner.adapt_and_predict(preprocessed[:6], support_labels, preprocessed[6:])
    got = model.signatures[export.UINT8_KEY](support_images=pixels[:6],
                                             support_labels=support_labels,
                                             query_images=pixels[6:])
    np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
