"""`python trainers/study.py` in a checkout: the `mgaug-study` program (`mgaug_tf_cli/study.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import _program

if __name__ == "__main__":
    _program.run("study")
