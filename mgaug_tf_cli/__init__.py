"""The command-line programs of mgaug-tf (imports no TensorFlow).

`mgaug-train` (`train.py`: train, evaluate, export), `mgaug-predict`,
`mgaug-report`, `mgaug-compare` and `mgaug-study`. A package of its own
beside `mgaug_tf` so that a program can set up its quiet start (`quiet`)
before the library, and with it TensorFlow, is imported.
"""

import importlib.resources
import os


def packaged_config(path):
    """The installed package's copy of `configs/NAME` (a relative `path`), or None.

    The configs ship inside this package, so a program run from any folder
    finds `configs/demo.cfg` or `configs/study/scarcity.study` by name.
    """
    parts = os.path.normpath(os.fspath(path)).split(os.sep)
    if os.path.isabs(path) or parts[0] != "configs" or len(parts) < 2:
        return None
    packaged = os.path.join(str(importlib.resources.files(__name__) / "configs"), *parts[1:])
    return packaged if os.path.isfile(packaged) else None
