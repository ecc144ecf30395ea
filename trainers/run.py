"""`python trainers/run.py` in a checkout: the `mgaug-train` program (`mgaug_tf_cli/train.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import _program

if __name__ == "__main__":
    _program.run("train")
