"""`python trainers/report.py` in a checkout: the `mgaug-report` program (`mgaug_tf_cli/report.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import _program

if __name__ == "__main__":
    _program.run("report")
