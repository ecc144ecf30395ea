"""`vectorize=` was removed (issue 13, target 5): passing it fails with the reason; old configs load."""

import keras
import pytest

import mgaug_tf as mg
from mgaug_tf.learners.base import VECTORIZE_REMOVED


def network():
    return mg.FewShotClassifier(mg.Conv4(filters=2), 3)


@pytest.mark.parametrize("make", [
    lambda **kwargs: mg.MAML(network(), 3, **kwargs),
    lambda **kwargs: mg.FOMAML(network(), 3, **kwargs),
    lambda **kwargs: mg.ANIL(network(), 3, **kwargs),
    lambda **kwargs: mg.MetaSGD(network(), 3, **kwargs),
    lambda **kwargs: mg.ProtoNet(mg.Conv4(filters=2), 3, **kwargs),
], ids=["maml", "fomaml", "anil", "metasgd", "protonet"])
@pytest.mark.parametrize("value", [True, False])
def test_vectorize_argument_is_refused_with_the_reason(make, value):
    with pytest.raises(TypeError) as error:
        make(vectorize=value)
    message = str(error.value)
    assert message == VECTORIZE_REMOVED
    assert message.startswith("vectorize was removed (issue 13)")
    assert "1.14-1.20x slower than the per-task path" in message
    assert "docs/performance.md" in message
    make()  # the same call without it builds


def test_config_saved_before_the_removal_still_loads():
    """Configs written before issue 13 hold `vectorize` (a training-only path)."""
    learner = mg.MAML(network(), 3, inner_lr=0.2, inner_steps=2, recompute=True)
    config = learner.get_config()
    assert "vectorize" not in config
    for old_value in (False, True):
        loaded = mg.MAML.from_config(dict(config, vectorize=old_value))
        assert (loaded.inner_lr, loaded.inner_steps, loaded.recompute) == (0.2, 2, True)
        assert not hasattr(loaded, "vectorize")
        assert keras.saving.serialize_keras_object(loaded)["config"].keys() == config.keys()
