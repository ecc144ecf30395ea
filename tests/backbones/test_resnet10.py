"""ResNet-10 (the reference code's `net/resnet.py`): forward pass, shapes, pool, init, errors."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import factory
from mgaug_tf.backbones import resnet10
from mgaug_tf.backbones.resnet10 import ResNet10
from mgaug_tf.errors import ArgumentError
from mgaug_tf_cli import flags as run_flags
from tests.trainers.conftest import REPO, run_main  # noqa: F401 (a fixture)

SMALL_WIDTHS = (4, 8, 8, 8)


def small_resnet10(final_pool="global", widths=SMALL_WIDTHS, dtype="float64", seed=0):
    keras.utils.set_random_seed(seed)
    return ResNet10(widths=widths, final_pool=final_pool, dtype=dtype)


def randomise_batch_norm(backbone, seed):
    """Gammas, betas and moving statistics away from 1 and 0, so each one shows in the output."""
    rng = np.random.default_rng(seed)
    for variable in backbone.variables:
        name = variable.path.rsplit("/", 1)[-1]
        if name in ("gamma", "moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))
        elif name in ("beta", "moving_mean"):
            variable.assign(rng.normal(size=variable.shape) * 0.3)


# ------------------------------------------------ independent plain tf.nn twin
def plain_resnet10(images, weights, final_pool, training, epsilon=1e-5):
    """The reference network written out with tf.nn ops, explicit PyTorch paddings.

    `weights` maps the layers' names to their arrays (kernel, gamma, beta,
    moving statistics); nothing of the Keras model is called.
    """

    def pad(size):
        return [[0, 0], [size, size], [size, size], [0, 0]]

    def conv(x, name, stride, padding):
        return tf.nn.conv2d(x, weights[name + "/kernel"], stride, pad(padding))

    def norm(x, name):
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
        else:
            mean, variance = weights[name + "/moving_mean"], weights[name + "/moving_variance"]
        return tf.nn.batch_normalization(x, mean, variance, weights[name + "/beta"],
                                         weights[name + "/gamma"], epsilon)

    x = tf.nn.relu(norm(conv(images, "stem_conv", 2, 3), "stem_bn"))
    x = tf.nn.max_pool2d(x, 3, 2, pad(1))  # explicit padding: never a window's maximum
    for index in range(4):
        block = f"block{index}/"
        stride = 1 if index == 0 else 2
        out = tf.nn.relu(norm(conv(x, block + "conv1", stride, 1), block + "bn1"))
        out = norm(conv(out, block + "conv2", 1, 1), block + "bn2")
        if block + "shortcut_conv/kernel" in weights:
            x = norm(conv(x, block + "shortcut_conv", stride, 0), block + "shortcut_bn")
        x = tf.nn.relu(out + x)
    if final_pool == "reference":
        x = tf.nn.avg_pool2d(x, 5, 5, "VALID")  # PyTorch AvgPool2d(5)
        assert x.shape[1:3] == (1, 1)
    else:
        x = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.reshape(x, [x.shape[0], -1])


def weights_by_name(backbone):
    """`{"block1/conv1/kernel": array, ...}`: the variables' paths below the model's name."""
    return {variable.path.split("/", 1)[1]: variable.numpy() for variable in backbone.variables}


@pytest.mark.parametrize("size, final_pool, training", [
    (64, "global", True),       # even sides: PyTorch's and Keras's "same" paddings differ
    (37, "global", False),      # odd: 37 -> 19 -> 10 -> 5 -> 3 -> 2 through the strided layers
    (129, "reference", True),   # odd, the reference pool's smallest size (last map 5 x 5)
    (16, "global", False),      # a last map of 1 x 1: the stride-2 layers pad to have rows
])
def test_forward_equals_an_independent_tf_nn_computation(size, final_pool, training):
    backbone = small_resnet10(final_pool)
    backbone.build((None, size, size, 3))
    randomise_batch_norm(backbone, seed=size)
    images = tf.random.stateless_normal([3, size, size, 3], seed=[size, 1], dtype=tf.float64)
    got = backbone(images, training=training).numpy()
    want = plain_resnet10(images, weights_by_name(backbone), final_pool, training).numpy()
    assert got.shape == (3, SMALL_WIDTHS[-1]) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    print(f"max |keras - tf.nn| at {size} px ({final_pool}): {np.abs(got - want).max():.2e}")


def test_float32_gradients_at_an_even_size_with_few_channels_equal_the_float64_twin():
    """64 px, widths (4, 8, 8, 8): the shortcuts subsample a 16 x 16 x 4 map (and smaller).

    There TensorFlow's oneDNN (float32) filter gradient of a strided 1x1
    convolution corrupts the heap; the backbone must not reach it. The twin
    runs in float64, which does not use oneDNN.
    """
    backbone = small_resnet10(dtype="float32")
    backbone.build((None, 64, 64, 3))
    randomise_batch_norm(backbone, seed=5)
    images = tf.random.stateless_normal([3, 64, 64, 3], seed=[5, 1])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(backbone(images, training=True)))
    got = dict(zip([v.path.split("/", 1)[1] for v in backbone.trainable_variables],
                   tape.gradient(loss, backbone.trainable_variables)))
    weights = {name: tf.Variable(value.astype("float64"))
               for name, value in weights_by_name(backbone).items()}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(plain_resnet10(tf.cast(images, tf.float64), weights,
                                                   "global", training=True)))
    want = dict(zip(weights, tape.gradient(loss, list(weights.values()))))
    assert {name for name in got if "shortcut_conv" in name} == {
        f"block{index}/shortcut_conv/kernel" for index in (1, 2, 3)}
    for name, gradient in got.items():
        np.testing.assert_allclose(gradient, want[name], rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("layer, padding, shape", [("stem", 3, (2, 64, 64, 3)),
                                                    ("block1", 1, (2, 16, 16, 4))])
def test_strided_layers_pad_as_pytorch_not_as_keras_same_on_even_inputs(layer, padding, shape):
    """The backbone's own stride-2 convolutions equal PyTorch's symmetric padding.

    Keras's "same" pads an even input bottom-right only: another network,
    which the explicit padding must not be.
    """
    backbone = small_resnet10()
    backbone.build((None, 64, 64, 3))
    if layer == "stem":
        conv, conv_padding = backbone.stem_conv, backbone.stem_padding
    else:
        conv, conv_padding = backbone.blocks[1].conv1, backbone.blocks[1].padding1
    images = tf.random.stateless_normal(shape, seed=[3, 4], dtype=tf.float64)
    got = resnet10._apply(conv, conv_padding, images)  # pylint: disable=protected-access
    kernel = conv.kernel
    torch_style = tf.nn.conv2d(images, kernel, 2, [[0, 0], [padding, padding],
                                                   [padding, padding], [0, 0]])
    keras_same = tf.nn.conv2d(images, kernel, 2, "SAME")
    assert got.shape == torch_style.shape == keras_same.shape
    np.testing.assert_allclose(got, torch_style, rtol=1e-12, atol=1e-12)
    assert np.abs(got.numpy() - keras_same.numpy()).max() > 0.1


# ------------------------------------------------------------- shapes, pool
@pytest.mark.parametrize("size, grid", [(224, 7), (192, 6), (160, 5), (140, 5), (129, 5),
                                        (128, 4), (288, 9), (289, 10)])
def test_feature_grid_follows_pytorch_floor_arithmetic(size, grid):
    assert ResNet10().feature_grid(size, size) == (grid, grid)


def test_reference_pool_accepts_129_to_288_px():
    backbone = ResNet10(final_pool="reference")
    assert (backbone.min_input_size, backbone.max_input_size) == (129, 288)
    assert ResNet10().min_input_size == 1 and ResNet10().max_input_size is None


def test_released_resolutions_keep_512_features_and_the_reference_window():
    """Default widths at 224, 192, 160, 140 px: 512 features; the pool is AvgPool2d(5)'s window."""
    keras.utils.set_random_seed(1)
    backbone = ResNet10(final_pool="reference")
    backbone.build((None, 224, 224, 3))
    for size, grid in ((224, 7), (192, 6), (160, 5), (140, 5)):
        images = tf.random.stateless_normal([2, size, size, 3], seed=[size, 2])
        last_map = backbone.feature_map(images, training=True)
        features = backbone(images, training=True)
        assert last_map.shape == (2, grid, grid, 512) and features.shape == (2, 512)
        pooled = tf.nn.avg_pool2d(last_map, 5, 5, "VALID")  # PyTorch AvgPool2d(5)
        assert pooled.shape == (2, 1, 1, 512)
        np.testing.assert_allclose(features, pooled[:, 0, 0], rtol=1e-5, atol=1e-6)
        if grid > 5:  # the reference drops the rest of the map; the global mean would not
            assert np.abs(features - tf.reduce_mean(last_map, [1, 2])).max() > 1e-3


def test_global_pool_averages_the_whole_last_map():
    backbone = small_resnet10("global")
    images = tf.random.stateless_normal([2, 100, 100, 3], seed=[5, 6], dtype=tf.float64)
    backbone.build(images.shape)
    last_map = backbone.feature_map(images, training=True)
    np.testing.assert_allclose(backbone(images, training=True),
                               tf.reduce_mean(last_map, [1, 2]), rtol=1e-13)


# ------------------------------------------------------------- structure, init
def test_layers_and_shortcuts_of_the_reference():
    backbone = ResNet10()
    backbone.build((None, 224, 224, 3))
    kernels = [(v.path.split("/", 1)[1], tuple(v.shape)) for v in backbone.trainable_variables
               if v.path.endswith("kernel")]
    assert kernels == [
        ("stem_conv/kernel", (7, 7, 3, 64)),
        ("block0/conv1/kernel", (3, 3, 64, 64)),
        ("block0/conv2/kernel", (3, 3, 64, 64)),
        ("block1/conv1/kernel", (3, 3, 64, 128)),
        ("block1/conv2/kernel", (3, 3, 128, 128)),
        ("block1/shortcut_conv/kernel", (1, 1, 64, 128)),
        ("block2/conv1/kernel", (3, 3, 128, 256)),
        ("block2/conv2/kernel", (3, 3, 256, 256)),
        ("block2/shortcut_conv/kernel", (1, 1, 128, 256)),
        ("block3/conv1/kernel", (3, 3, 256, 512)),
        ("block3/conv2/kernel", (3, 3, 512, 512)),
        ("block3/shortcut_conv/kernel", (1, 1, 256, 512))]
    # No biases anywhere; 12 batch norms (stem, 2 per block, 3 shortcuts) of
    # 2880 channels in all, 4 values each: CloserLook's 4.9 M parameters.
    assert sum(v.path.endswith("gamma") for v in backbone.trainable_variables) == 12
    assert len(backbone.trainable_variables) == 12 + 24
    assert backbone.count_params() == sum(int(np.prod(shape)) for _, shape in kernels) + 4 * 2880
    assert backbone.count_params() == 4_911_552


def test_initialisation_is_the_references():
    backbone = ResNet10()
    backbone.build((None, 224, 224, 3))
    for variable in backbone.trainable_variables:
        value = variable.numpy()
        if variable.path.endswith("kernel"):
            height, width, _, filters = value.shape
            want = math.sqrt(2.0 / (height * width * filters))
            assert abs(value.mean()) < 4 * want / math.sqrt(value.size), variable.path
            assert abs(value.std() / want - 1) < 6 / math.sqrt(value.size) + 0.01, variable.path
        elif variable.path.endswith("gamma"):
            assert (value == 1).all()
        else:
            assert (value == 0).all(), variable.path
    head = mg.FewShotClassifier(backbone, 5)
    head.build((None, 224, 224, 3))
    bound = 1 / math.sqrt(512)
    kernel, bias = head.head.kernel.numpy(), head.head.bias.numpy()
    # U(-bound, bound), not Keras's Glorot (bound sqrt(6 / 517) = 0.108) nor zero bias.
    assert 0.99 * bound < np.abs(kernel).max() <= bound
    assert 0 < np.abs(bias).max() <= bound


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("size", [128, 289, 64])
def test_reference_pool_refuses_sizes_it_cannot_pool_before_any_work(size):
    backbone = ResNet10(final_pool="reference")
    with pytest.raises(ArgumentError, match=r"129 to 288 px for final_pool='reference'") as error:
        backbone.build((None, size, size, 3))
    assert error.value.argument == "input_shape"


@pytest.mark.parametrize("arguments, argument", [
    (dict(widths=(64, 128, 256)), "widths"), (dict(widths=(64, 128, 256, 0)), "widths"),
    (dict(final_pool="avg"), "final_pool"), (dict(final_pool="flatten"), "final_pool"),
    (dict(fused_batch_norm="yes"), "fused_batch_norm")])
def test_bad_arguments_name_themselves(arguments, argument):
    with pytest.raises(ArgumentError) as error:
        ResNet10(**arguments)
    assert error.value.argument == argument


# ------------------------------------------------------------------ configs
RESNET10_CONFIGS = sorted(REPO.glob("configs/*_resnet10_*.cfg"))


def test_there_are_resnet10_configs_for_both_datasets_and_three_learners():
    assert [path.name for path in RESNET10_CONFIGS] == [
        f"{data}_resnet10_{learner}{mgaug}.cfg" for data in ("cub", "mini")
        for learner in ("fomaml", "maml", "protonet") for mgaug in ("", "_mgaug")]


@pytest.mark.parametrize("path", RESNET10_CONFIGS, ids=lambda path: path.name)
def test_resnet10_config_is_the_reference_network_and_builds(path, monkeypatch):
    monkeypatch.chdir(REPO)  # included --flagfile paths are relative to the repository
    config = run_flags.parse_config([f"--flagfile={path}"])
    backbone = config.model.backbone
    assert (backbone.name, backbone.filters, config.data.image_size) == ("resnet10", (64,), 224)
    cub = config.data.dataset == "cub"
    assert backbone.final_pool == ("reference" if cub else "global")
    assert config.model.mgaug.parity == (cub and config.model.mgaug.enabled)
    # Built unbuilt (no weights): the constructors' checks, not the 224-px network.
    learner = factory.build_learner(config.model)
    network_backbone = getattr(learner.network, "backbone", learner.network)
    assert network_backbone.widths == (64, 128, 256, 512)


def test_image_size_too_small_for_the_reference_pool_names_the_field(monkeypatch):
    monkeypatch.chdir(REPO)
    config = run_flags.parse_config(["--flagfile=configs/cub_resnet10_fomaml.cfg",
                                     "--image_size=128"])
    with pytest.raises(mg.config.ConfigFieldError, match="129 to 288 px") as error:
        factory.build_learner(config.model, (128, 128, 3))
    assert error.value.paths == ("data.image_size",)


@pytest.mark.parametrize("config, flags, flag", [
    ("cub_resnet10_fomaml_mgaug", ["--pooling=flatten"], "--pooling=flatten"),
    ("cub_resnet10_fomaml", ["--backbone=conv4", "--filters=32"], "--final_pool=reference"),
])
def test_bad_input_names_the_flag_before_any_work(run_main, config, flags, flag):
    code, stderr, model_dir = run_main(f"--flagfile=configs/{config}.cfg",
                                       "--data_dir=/no/such/folder", *flags)
    # Refused before the data (a folder that does not exist) was looked at.
    assert code == 2 and flag in stderr, stderr
    assert "data_dir" not in stderr and "Traceback" not in stderr and not model_dir.exists()
    assert len(stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ benchmark rows
def test_benchmark_rows_are_the_released_resnet10_settings_at_224_px():
    """The resnet10 suite: FOMAML (4 tasks) and ProtoNet (1) without and with the
    released MGAug (parity), and second-order MAML with 4 tasks (it fits: no recompute)."""
    from benchmarks import meta_step  # pylint: disable=import-outside-toplevel

    rows = meta_step.SUITES["resnet10"]
    assert all(row.overrides.get("model.backbone.name") == "resnet10" for row in rows)
    configs = [mg.config.override(meta_step.BASE, row.overrides) for row in rows]
    assert all(row.bench["cores"] == 1 for row in rows)
    assert [(c.model.learner.name, c.model.mgaug.enabled, c.episodes.meta_batch_size,
             c.model.learner.recompute) for c in configs] == [
        ("fomaml", False, 4, False), ("fomaml", True, 4, False),
        ("protonet", False, 1, False), ("protonet", True, 1, False),
        ("maml", False, 4, False)]
    for experiment in configs:
        backbone = experiment.model.backbone
        assert (backbone.filters, backbone.final_pool, experiment.data.image_size) == (
            (64,), "reference", 224)
        if experiment.model.mgaug.enabled:
            assert experiment.model.mgaug == mg.presets.released_mgaug(
                experiment.model.learner.name, image_size=224, parity=True,
                backbone="resnet10")
