"""`python trainers/predict.py` in a checkout: the `mgaug-predict` program (`mgaug_tf_cli/predict.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import _program

if __name__ == "__main__":
    _program.run("predict")
