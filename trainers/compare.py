"""`python trainers/compare.py` in a checkout: the `mgaug-compare` program (`mgaug_tf_cli/compare.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import _program

if __name__ == "__main__":
    _program.run("compare")
