"""Named presets: the settings of published runs, defined once.

A preset is a function registered under a name that returns a config
section; `get(name, **arguments)` calls it. The `.cfg` files in `configs/`
that claim a published setting are checked against these by the tests, and
the benchmark's released rows are built from them.
"""

from mgaug_tf import config

_PRESETS = {}
# The reference code's released sub-network sizes in pixels at 84 px (train.py's
# runs: "resize_[84, 64, 48]"); other image sizes scale them.
RELEASED_RESOLUTIONS_84 = (84, 64, 48)
# Keep ratios of the released runs' names: FOMAML "..._(0.98,1.0)_...", ProtoNet
# "..._(0.97,1.0)_..."; MAML, ANIL and Meta-SGD read the same arguments as FOMAML.
RELEASED_KEEP_MIN = {"protonet": 0.97}
# The reference code's sizes with a ResNet (train.py: `args.resos = [224, 192,
# 160, 140]` at `args.image_size = 224` for any net but Conv).
RELEASED_RESOLUTIONS_RESNET10 = (224, 192, 160, 140)
RELEASED_KEEP_MIN_GRADIENT = 0.98


def register(name):
    """Registers the decorated function as preset `name` (exp_factory's style)."""
    def decorate(function):
        if name in _PRESETS:
            raise ValueError(f"Preset {name!r} is registered already.")
        _PRESETS[name] = function
        return function
    return decorate


def names():
    return tuple(sorted(_PRESETS))


def get(name, **arguments):
    """The config section preset `name` returns for `arguments`.

    Raises:
        ValueError: An unknown name, listing the known ones.
    """
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}; expected one of {list(names())}.")
    return _PRESETS[name](**arguments)


def released_resolutions(image_size):
    """The released sizes (84, 64, 48) scaled to `image_size`, rounded to pixels."""
    return tuple(int(round(image_size * size / RELEASED_RESOLUTIONS_84[0]))
                 for size in RELEASED_RESOLUTIONS_84)


@register("released_mgaug")
def released_mgaug(learner_name="maml", image_size=84, parity=False, backbone="conv4"):
    """MGAug as the reference code's released runs used it (CUB, Conv-4, 5-way 1-shot).

    Catfish (MMCA) pruning, K = 3 sub-networks per task, their meta-gradients
    summed with the full network's (loss.backward per network, one step),
    keep ratios (0.98, 1.0) for the gradient learners and (0.97, 1.0) for
    ProtoNet, each sub-network's images resized with aligned corners to one
    of (84, 64, 48) px drawn per sub-network (scaled to other image sizes:
    not released, same ratios), and the reference's flatten-head rule.
    docs/method.md gives the sources.

    Args:
        learner_name: A registered learner name; selects the keep ratios.
        image_size: The full network's input size in pixels.
        parity: Also reproduce the reference code's quirks (`MGAug(parity=True)`),
            as the released CUB configs do.
        backbone: A registered backbone name. `"resnet10"` takes the
            reference's ResNet sizes (224, 192, 160, 140) px
            (`RELEASED_RESOLUTIONS_RESNET10`, at 224 px) and no flatten-head
            rule (its features are averaged: 512 at every size).

    Returns:
        A `config.MGAugConfig`.
    """
    resnet10 = backbone == "resnet10"
    return config.MGAugConfig(
        strategy="catfish", num_subnets=3,
        keep_min=RELEASED_KEEP_MIN.get(learner_name, RELEASED_KEEP_MIN_GRADIENT), keep_max=1.0,
        reduction="sum",
        resolutions=RELEASED_RESOLUTIONS_RESNET10 if resnet10 else released_resolutions(
            image_size),
        parity=parity, resize="align_corners",
        flatten_head=config.NO_FLATTEN_HEAD if resnet10 else "reference")
