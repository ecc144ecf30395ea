"""Backbone constructors and builds refuse what they cannot use, naming the argument."""

import pytest

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError


@pytest.mark.parametrize("make, argument, value", [
    (lambda: mg.Conv4(filters=0), "filters", 0),
    (lambda: mg.Conv4(filters=2.5), "filters", 2.5),
    (lambda: mg.Conv4(pooling="max"), "pooling", "max"),
    (lambda: mg.Conv4(fused_batch_norm="yes"), "fused_batch_norm", "yes"),
    (lambda: mg.ResNet12(widths=(4, 0, 4, 4)), "widths", (4, 0, 4, 4)),
    (lambda: mg.ResNet12(widths=(4, 4)), "widths", (4, 4)),
    (lambda: mg.ResNet12(pooling="max"), "pooling", "max"),
    (lambda: mg.FewShotClassifier(mg.Conv4(), 0), "n_way", 0),
    (lambda: mg.FewShotClassifier(mg.Conv4(), 3, flatten_head="crop"), "flatten_head", "crop"),
])
def test_constructors_name_the_refused_argument(make, argument, value):
    with pytest.raises(ArgumentError, match=f"`{argument}` ") as error:
        make()
    assert error.value.argument == argument and error.value.value == value
    assert f"Received: {argument}={value!r}" in str(error.value)


@pytest.mark.parametrize("backbone", [mg.Conv4, mg.ResNet12])
def test_backbones_refuse_inputs_below_their_min_input_size(backbone):
    assert backbone.min_input_size == 16
    with pytest.raises(ArgumentError, match="at least 16 px") as error:
        backbone().build((None, 15, 20, 3))
    assert error.value.argument == "input_shape"
    backbone(**({"filters": 2} if backbone is mg.Conv4 else {"widths": (2, 2, 2, 2)})).build(
        (None, 16, 16, 1))
