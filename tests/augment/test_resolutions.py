"""MGAug's multi-resolution sub-networks as released: aligned-corner resize, flatten-head slicing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import functional
from mgaug_tf.errors import ArgumentError
from mgaug_tf.augment.mgaug import resize_images
from mgaug_tf.backbones.classifier import reference_head_rows
from mgaug_tf.gradient_check import FiniteDifferences
from mgaug_tf.learners.base import cross_entropy
from tests.conftest import make_episode_batch

TOLERANCE = 1e-6


# ------------------------------------------------------------------ resize
def test_align_corners_resize_matches_a_hand_computation():
    image = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1) ** 1.5  # not linear
    x = image[0, :, :, 0]
    got = resize_images(tf.constant(image), 3, "align_corners").numpy()[0, :, :, 0]
    # 4 -> 3 with aligned corners samples input coordinates 0, 1.5, 3.
    middle_rows = (x[1] + x[2]) / 2
    want = np.array([
        [x[0, 0], (x[0, 1] + x[0, 2]) / 2, x[0, 3]],
        [middle_rows[0], (middle_rows[1] + middle_rows[2]) / 2, middle_rows[3]],
        [x[3, 0], (x[3, 1] + x[3, 2]) / 2, x[3, 3]]])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-15)
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert got[corner] == x[corner]  # copied exactly


def bilinear_align_corners(image, size):
    """The bilinear formula, one output pixel at a time (numpy, float64)."""
    height, width = image.shape
    out = np.zeros((size, size))
    for oy in range(size):
        for ox in range(size):
            sy, sx = oy * (height - 1) / (size - 1), ox * (width - 1) / (size - 1)
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = sy - y0, sx - x0
            out[oy, ox] = ((1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x1])
                           + fy * ((1 - fx) * image[y1, x0] + fx * image[y1, x1]))
    return out


def test_align_corners_resize_84_to_64_inside_tf_function_with_a_drawn_size():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 84, 84, 3))

    @tf.function(input_signature=[tf.TensorSpec([None, 84, 84, 3], tf.float64),
                                  tf.TensorSpec([], tf.int32)])
    def resize(batch, size):
        return resize_images(batch, size, "align_corners")

    got = resize(tf.constant(images), tf.constant(64)).numpy()
    assert got.shape == (2, 64, 64, 3)
    for b, c in ((0, 0), (1, 2)):
        np.testing.assert_allclose(got[b, :, :, c], bilinear_align_corners(images[b, :, :, c], 64),
                                   rtol=1e-12, atol=1e-12)
    # In float32 the coordinates o * 83 / 63 are rounded as in the reference's
    # float32 kernel (|error| <= 84 * 2**-24 per coordinate, times a pixel
    # difference of a few units); TF's own aligned-corner kernel agrees to that.
    images32 = images.astype(np.float32)
    got32 = resize_images(tf.constant(images32), 64, "align_corners").numpy()
    np.testing.assert_allclose(got32, got, atol=5e-5)
    tf_kernel = tf.raw_ops.ResizeBilinear(images=images32, size=[64, 64], align_corners=True)
    np.testing.assert_allclose(got32, tf_kernel.numpy(), atol=5e-5)
    images = images32
    # A size known when tracing gives static shapes (the FLOP count needs them).
    static = tf.function(lambda batch: resize_images(batch, 48)).get_concrete_function(
        tf.TensorSpec([None, 84, 84, 3]))
    assert static.output_shapes.as_list() == [None, 48, 48, 3]
    # The half-pixel resize (tf.image.resize) is a different image.
    half_pixel = resize_images(tf.constant(images), 64, "half_pixel").numpy()
    np.testing.assert_allclose(half_pixel, tf.image.resize(images, [64, 64]).numpy())
    assert np.abs(half_pixel - got).max() > 0.3


# ------------------------------------------------------------ head slicing
def test_reference_rows_worked_example_of_the_docstring():
    rows = reference_head_rows((2, 2), (1, 1), 2).numpy()
    np.testing.assert_array_equal(rows, [0, 2])


def test_sliced_head_reads_exactly_the_entries_the_reference_rule_names():
    """C = 2, full grid 3 x 3 (48 px), sub-network grid 2 x 2 (32 px); values encode (c, y, x)."""
    keras.utils.set_random_seed(0)
    network = mg.FewShotClassifier(mg.Conv4(filters=2, dtype="float64"), 3,
                                   flatten_head="reference")
    network.build((None, 48, 48, 1))
    assert network.full_grid == (3, 3)
    channels, full, sub = 2, 3, 2
    # The reference (channels-first) head weight [n_way, C*H*W] and its Keras kernel.
    rng = np.random.default_rng(1)
    torch_weight = rng.normal(size=(3, channels * full * full))
    kernel = np.zeros((full * full * channels, 3))
    for c in range(channels):
        for y in range(full):
            for x in range(full):
                kernel[(y * full + x) * channels + c] = torch_weight[:, c * full * full
                                                                     + y * full + x]
    network.head.kernel.assign(kernel)
    network.head.bias.assign(np.zeros(3))
    value = {(c, y, x): 100.0 * (c + 1) + 10.0 * y + x
             for c in range(channels) for y in range(sub) for x in range(sub)}
    keras_order = np.array([[value[c, y, x] for y in range(sub) for x in range(sub)
                             for c in range(channels)]])
    nchw_order = np.array([value[c, y, x] for c in range(channels) for y in range(sub)
                           for x in range(sub)])
    placed = network.head_features(tf.constant(keras_order), (32, 32)).numpy()[0]
    for y in range(full):
        for x in range(full):
            for c in range(channels):
                j = c * full * full + y * full + x  # the row's channels-first index
                want = nchw_order[j] if j < nchw_order.size else 0.0
                assert placed[(y * full + x) * channels + c] == want, (c, y, x)
    # The reference's logits: its d features times the first d weight columns.
    want_logits = nchw_order @ torch_weight[:, :nchw_order.size].T
    np.testing.assert_allclose(network.head(placed[None]).numpy()[0], want_logits, rtol=1e-12)


def test_full_resolution_features_go_straight_to_the_head():
    network = mg.FewShotClassifier(mg.Conv4(filters=2), 3, flatten_head="reference")
    network.build((None, 48, 48, 1))
    features = tf.random.normal([2, 18])
    assert network.head_features(features, (48, 48)) is features
    # A size drawn at run time that happens to be the full one: the identity.
    rows = reference_head_rows((3, 3), (tf.constant(3), tf.constant(3)), 2).numpy()
    np.testing.assert_array_equal(rows, np.arange(18))


def test_resize_features_option_keeps_constant_feature_maps_constant():
    network = mg.FewShotClassifier(mg.Conv4(filters=2), 3, flatten_head="resize_features")
    network.build((None, 48, 48, 1))
    small = tf.constant([[1.0, 2.0] * 4])  # 2 x 2 grid, channel values 1 and 2 everywhere
    np.testing.assert_allclose(network.head_features(small, (32, 32)).numpy(),
                               [[1.0, 2.0] * 9], rtol=1e-6)


# ------------------------------------------------ finite differences (float64)
# Feature grids 2 x 2 (12 features with 3 filters) and 1 x 1 (3 features, head
# rows 0, 3 and 6 under the reference rule).
SIZE, RESOLUTIONS = 32, (32, 24, 16)
# The meta-loss after inner steps is only piecewise smooth in theta: the
# support gradient jumps where a max-pool's winner or a ReLU flips, and the
# adapted weights with it. Larger steps straddle such jumps (seen at 1e-5 and
# 1e-6 here); float64 rounding at 1e-7 is ~1e-16 * loss / 1e-7, far below
# the tolerance.
EPSILON = 1e-7


def released_like_learner(kind, flatten_head="reference", seed=3):
    keras.utils.set_random_seed(0)
    network = mg.FewShotClassifier(mg.Conv4(filters=3, dtype="float64"), 3)
    augmentation = mg.MGAug("catfish", num_subnets=3, keep_range=(0.6, 0.9),
                            resolutions=RESOLUTIONS, flatten_head=flatten_head, seed=seed)
    learner = kind(network, 3, inner_lr=0.1, inner_steps=2, augmentation=augmentation)
    learner.build((SIZE, SIZE, 1))
    return learner


def fixed_draws(learner, batch):
    """Each task's masks and resized sub-network tasks, as the meta-step at step 0 drew them."""
    augmentation = learner.augmentation
    variables = learner.trainable_variables
    draws = []
    for task_index, task in enumerate(learner._split_tasks(batch)):
        _, full = learner.task_gradients(task, variables)
        subnets = augmentation.draw_subnetworks(
            learner, augmentation.task_seed(learner, task_index), full, task=task)
        draws.append((task, list(zip(subnets.masks, subnets.tasks))))
    return draws


def augmented_objective(learner, draws, first_order):
    """L_full + sum_k L_k per task with fixed masks and resolutions.

    Second order (MAML): the query losses after the inner loop, as functions of
    theta. First order (FOMAML): each inner loop's displacement is frozen at
    the current theta, so the objective's gradient is the query gradient at
    the adapted weights, FOMAML's meta-gradient.
    """
    def query_loss(task, masks, theta, displacement):
        if displacement is None:
            return learner.task_outcome(task, masks=masks, weights=theta).query_loss
        adapted = [w + d for w, d in zip(theta, displacement)]
        logits, _ = learner._network_call(adapted, task.query_images, masks)
        return cross_entropy(task.query_labels, logits)

    def displacement_of(task, masks):
        if not first_order:
            return None
        theta = functional.read_values(learner.network.trainable_variables)

        def support_loss(weights):
            logits, _ = learner._network_call(weights, task.support_images, masks)
            return cross_entropy(task.support_labels, logits)

        adapted = learner._adapt(theta, support_loss, training=True)
        return [tf.constant(a.numpy() - t.numpy()) for a, t in zip(adapted, theta)]

    frozen = [(task, displacement_of(task, None),
               [(masks, subnet_task, displacement_of(subnet_task, masks))
                for masks, subnet_task in subnets]) for task, subnets in draws]

    def objective():
        theta = functional.read_values(learner.network.trainable_variables)
        total = tf.constant(0.0, tf.float64)
        for task, full_displacement, subnets in frozen:
            total += query_loss(task, None, theta, full_displacement)
            for masks, subnet_task, displacement in subnets:
                total += query_loss(subnet_task, masks, theta, displacement)
        return total

    return objective


@pytest.mark.parametrize("kind,flatten_head", [
    (mg.MAML, "reference"), (mg.FOMAML, "reference"),
    pytest.param(mg.MAML, "resize_features", marks=pytest.mark.slow)])
def test_augmented_meta_gradient_with_resolutions_matches_finite_differences(kind, flatten_head):
    batch = make_episode_batch(5, tasks=1, n_way=3, k_shot=1, k_query=2, size=SIZE,
                               dtype="float64")
    learner = released_like_learner(kind, flatten_head)
    _, gradients = tf.function(learner.compute_meta_gradients)(batch)
    learner.meta_step.assign(0)  # replay the step's draws
    draws = fixed_draws(learner, batch)
    sizes = {int(subnet_task.support_images.shape[1])
             for _, subnets in draws for _, subnet_task in subnets}
    assert {24, 16} <= sizes  # smaller grids, so the head really is sliced
    differences = FiniteDifferences(learner, batch, epsilon=EPSILON, meta_loss=augmented_objective(
        learner, draws, first_order=learner.first_order))
    errors = [differences.directional(gradients, seed)[2] for seed in range(3)]
    paths = [v.path for v in learner.trainable_variables]
    kernel = paths.index(next(p for p in paths if p.endswith("head/kernel")))
    # Head rows 3 and 6 are read by the full network and by the 1 x 1
    # sub-networks' channels 1 and 2; row 1 by the full network only.
    for flat in (3 * 3 + 1, 6 * 3 + 2, 1 * 3 + 0):
        errors.append(differences.coordinate(gradients, kernel, flat)[2])
    print(f"{kind.__name__} {flatten_head}: relative errors {errors}")
    assert max(errors) < TOLERANCE, errors


# --------------------------------------------------------------- bad input
def test_anil_adapts_the_sliced_head_of_smaller_sub_networks():
    """ANIL's inner loop runs on the head alone: the same flatten-head rule applies."""
    keras.utils.set_random_seed(0)
    learner = mg.ANIL(mg.FewShotClassifier(mg.Conv4(filters=2), 3), 3, inner_lr=0.1,
                      inner_steps=1, augmentation=mg.MGAug(
                          "random_param", num_subnets=1, keep_range=(1.0, 1.0),
                          resolutions=(16,), flatten_head="reference"))
    learner.build((32, 32, 1))
    batch = make_episode_batch(0, tasks=1, n_way=3, k_shot=1, k_query=2, size=32)
    task = learner._split_tasks(batch)[0]
    small = mg.episodes.Task(*(resize_images(tf.convert_to_tensor(field), 16)
                               if len(field.shape) == 4 else field for field in task))
    outcome = learner.task_outcome(small)  # adapts the head on the placed features
    assert outcome.query_logits.shape == (6, 3)
    # By hand: the 1 x 1 x 2 features go to rows 0 and 2 of the 2 x 2 x 2 head input.
    features = learner.network.backbone(small.query_images, training=True).numpy()
    placed = np.zeros((6, 8))
    placed[:, [0, 2]] = features
    np.testing.assert_array_equal(learner.network.head_features(
        features, (16, 16), learner.augmentation_settings.flatten_head), placed)
    _, gradients = learner.compute_meta_gradients(batch)
    assert all(np.all(np.isfinite(gradient)) for gradient in gradients)


def test_flatten_head_resolutions_need_a_slicing_option():
    keras.utils.set_random_seed(0)
    with pytest.raises(ArgumentError, match=r"`flatten_head` must be 'reference'.*"
                                            r"'resize_features' for resolutions=\(48, 32\) "
                                            "with a flatten head") as error:
        mg.MAML(mg.FewShotClassifier(mg.Conv4(filters=2), 3), 3,
                augmentation=mg.MGAug(resolutions=(48, 32)))
    assert error.value.argument == "flatten_head" and error.value.value is None
    with pytest.raises(ArgumentError, match="`flatten_head` must be None or one of"):
        mg.MGAug(resolutions=(48,), flatten_head="crop")
    # parity=True implies the reference's resize and head rule.
    parity = mg.MGAug(resolutions=(48, 32), parity=True)
    assert (parity.resize_method, parity.flatten_head) == ("align_corners", "reference")
    network = mg.FewShotClassifier(mg.Conv4(filters=2), 3)
    learner = mg.MAML(network, 3, augmentation=parity)
    assert learner.augmentation_settings.flatten_head == "reference"
    assert network.flatten_head is None  # the learner passes it per call
    with pytest.raises(ArgumentError, match="`parity` must be False with "
                                            "resize_method='half_pixel'"):
        mg.MGAug(resolutions=(48,), parity=True, resize_method="half_pixel")
    with pytest.raises(ArgumentError, match="`parity` must be False .*"
                                            "flatten_head='resize_features'"):
        mg.MGAug(resolutions=(48,), parity=True, flatten_head="resize_features")
    with pytest.raises(ArgumentError, match="`resize_method` must be one of"):
        mg.MGAug(resize_method="bicubic")


def test_resolutions_below_the_backbones_min_input_size_are_refused_at_construction():
    with pytest.raises(ArgumentError, match=r"at least Conv4's min_input_size \(16 px"):
        mg.ProtoNet(mg.Conv4(filters=2), 3, augmentation=mg.MGAug(resolutions=(32, 15)))


def test_a_classifier_without_slicing_refuses_other_feature_lengths():
    network = mg.FewShotClassifier(mg.Conv4(filters=2), 3)
    network.build((None, 48, 48, 1))
    with pytest.raises(ValueError, match="takes 18 features .* but got 8"):
        network(tf.zeros([1, 32, 32, 1]))


def test_subnet_resolution_is_the_size_each_sub_network_is_resized_to():
    learner = released_like_learner(mg.MAML)
    augmentation = learner.augmentation
    batch = make_episode_batch(6, tasks=2, n_way=3, k_shot=1, k_query=2, size=SIZE,
                               dtype="float64")
    learner._checked_batch(batch)  # sets tasks_per_replica
    seeds = [augmentation.task_seed(learner, task) for task in range(2)]
    draws = fixed_draws(learner, batch)
    sizes = [[int(augmentation.subnet_resolution(seed, k)) for k in range(3)] for seed in seeds]
    assert sizes == [[subnet_task.support_images.shape[1] for _, subnet_task in subnets]
                     for _, subnets in draws]
    assert {size for row in sizes for size in row} <= set(RESOLUTIONS)
    assert len({size for row in sizes for size in row}) > 1  # the draw varies
    assert mg.MGAug("catfish", resolutions=(20,)).subnet_resolution(seeds[0], 0) == 20
    assert mg.MGAug("catfish").subnet_resolution(seeds[0], 0) is None
