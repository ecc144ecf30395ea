"""The `mlp` backbone and `FewShotRegressor`: values, saving, config and the registry's rules."""

import numpy as np
import pytest
import keras

from mgaug_tf import config, factory
from mgaug_tf.augment import masks as masks_lib
from mgaug_tf.backbones.classifier import FewShotClassifier
from mgaug_tf.backbones.mlp import MLP, FewShotRegressor
from mgaug_tf.errors import ArgumentError


def test_mlp_flattens_any_shape_then_dense_relu_layers():
    keras.utils.set_random_seed(0)
    network = FewShotRegressor(MLP((5, 3), dtype="float64"), output_size=2)
    inputs = np.random.default_rng(0).normal(size=(4, 3, 2))  # sequences of 3 steps of 2
    outputs = network(inputs).numpy()
    kernel0, bias0, kernel1, bias1, head, head_bias = (
        variable.numpy() for variable in network.trainable_variables)
    hidden = np.maximum(inputs.reshape(4, 6) @ kernel0 + bias0, 0)
    hidden = np.maximum(hidden @ kernel1 + bias1, 0)
    np.testing.assert_allclose(outputs, hidden @ head + head_bias, rtol=1e-12)
    assert kernel0.shape == (6, 5) and head.shape == (3, 2)
    # backbone weights first, then the head's: the split ANIL adapts
    assert [v.path.split("/")[-2] for v in network.trainable_variables][-2:] == ["head", "head"]


def test_saving_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    network = FewShotRegressor(MLP((7,)), 1)
    inputs = np.linspace(-5, 5, 9, dtype="float32")[:, None]
    expected = network(inputs).numpy()
    network.save(tmp_path / "regressor.keras")
    loaded = keras.saving.load_model(tmp_path / "regressor.keras")
    assert loaded.backbone.hidden_units == (7,) and loaded.output_size == 1
    np.testing.assert_array_equal(loaded(inputs).numpy(), expected)
    assert MLP.from_config(MLP((4, 2)).get_config()).hidden_units == (4, 2)


@pytest.mark.parametrize("value", [(), (40, 0), 40, (4.0,), "40"])
def test_hidden_units_domain(value):
    with pytest.raises(ArgumentError, match="`hidden_units` must be a non-empty sequence"):
        MLP(value)


def test_output_size_domain():
    with pytest.raises(ArgumentError, match="`output_size` must be an integer >= 1"):
        FewShotRegressor(MLP(), 0)


def test_registry_builds_mlp_with_finns_default_or_hidden_units():
    assert factory.build_backbone(config.BackboneConfig("mlp")).hidden_units == (40, 40)
    built = factory.build_backbone(config.BackboneConfig("mlp", hidden_units=(8, 4)))
    assert built.hidden_units == (8, 4)


@pytest.mark.parametrize("fields, path, words", [
    (dict(name="mlp", filters=(64,)), "model.backbone.filters", "takes its layer widths"),
    (dict(name="mlp", pooling="avg"), "model.backbone.pooling", "flattens its input"),
    (dict(name="mlp", fused_batch_norm="off"), "model.backbone.fused_batch_norm",
     "no batch norm"),
    (dict(name="mlp", hidden_units=(0,)), "model.backbone.hidden_units", "non-empty sequence"),
    (dict(name="conv4", hidden_units=(40,)), "model.backbone.hidden_units", "is mlp's option"),
    (dict(name="resnet12", hidden_units=(40,)), "model.backbone.hidden_units",
     "is mlp's option"),
])
def test_options_of_other_backbones_are_refused_by_field(fields, path, words):
    with pytest.raises(config.ConfigFieldError, match=words) as error:
        factory.build_backbone(config.BackboneConfig(**fields))
    assert error.value.paths == (path,)


def test_mlp_classifies_arrays_and_mgaug_prunes_its_dense_kernels():
    model = config.ModelConfig(
        backbone=config.BackboneConfig("mlp", hidden_units=(6,)),
        learner=config.LearnerConfig("maml", n_way=3, inner_steps=1),
        mgaug=config.MGAugConfig("random_param", num_subnets=1, include_dense=True))
    learner = factory.build_learner(model, (4, 5))  # examples of shape (4, 5): not images
    assert isinstance(learner.network, FewShotClassifier)
    assert learner.network(np.zeros((2, 4, 5), "float32")).shape == (2, 3)
    assert learner.augmentation.include_dense is True
    # Both Dense kernels (hidden layer and head) are prunable, biases are not.
    assert masks_lib.prunable_weights(learner.network, learner.augmentation.include_dense) == [
        True, False, True, False]
