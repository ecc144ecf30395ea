"""Backbone constructors and builds refuse what they cannot use, naming the argument."""

import numpy as np
import pytest

import mgaug_tf as mg
from mgaug_tf.errors import ArgumentError


@pytest.mark.parametrize("make, argument, value", [
    (lambda: mg.Conv4(filters=0), "filters", 0),
    (lambda: mg.Conv4(filters=2.5), "filters", 2.5),
    (lambda: mg.Conv4(filters=8.0), "filters", 8.0),
    (lambda: mg.Conv4(filters=(8, 16)), "filters", (8, 16)),
    (lambda: mg.Conv4(filters="8"), "filters", "8"),
    (lambda: mg.Conv4(filters=True), "filters", True),
    (lambda: mg.ResNet12(widths=(4, "4", 4, 4)), "widths", (4, "4", 4, 4)),
    (lambda: mg.ResNet12(widths=(4, 4.5, 4, 4)), "widths", (4, 4.5, 4, 4)),
    (lambda: mg.ResNet12(widths=(4, True, 4, 4)), "widths", (4, True, 4, 4)),
    (lambda: mg.Conv4(pooling="max"), "pooling", "max"),
    (lambda: mg.Conv4(fused_batch_norm="yes"), "fused_batch_norm", "yes"),
    (lambda: mg.ResNet12(widths=(4, 0, 4, 4)), "widths", (4, 0, 4, 4)),
    (lambda: mg.ResNet12(widths=(4, 4)), "widths", (4, 4)),
    (lambda: mg.ResNet12(pooling="max"), "pooling", "max"),
    (lambda: mg.FewShotClassifier(mg.Conv4(), 0), "n_way", 0),
    (lambda: mg.FewShotClassifier(mg.Conv4(), (5,)), "n_way", (5,)),
    (lambda: mg.FewShotClassifier(mg.Conv4(), 5.0), "n_way", 5.0),
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


def test_integer_arguments_share_one_wording():
    with pytest.raises(ArgumentError, match="`filters` must be an integer >= 1") as error:
        mg.Conv4(filters=(8, 16))
    assert error.value.owner == "Conv4"
    # A classifier's head may be 1 logit wide; a learner needs 2 ways: one check, one wording.
    with pytest.raises(ArgumentError, match="`n_way` must be an integer >= 1"):
        mg.FewShotClassifier(mg.Conv4(), 0)
    with pytest.raises(ArgumentError, match="`n_way` must be an integer >= 2"):
        mg.ProtoNet(mg.Conv4(), 1)
    assert mg.FewShotClassifier(mg.Conv4(filters=2), 1).n_way == 1
    assert mg.Conv4(filters=np.int64(4)).filters == 4
