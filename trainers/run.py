"""`python trainers/run.py` in a checkout: the `mgaug-train` program (`mgaug_tf_cli/train.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import sys

try:
    from mgaug_tf_cli.train import main
except ModuleNotFoundError as error:
    if error.name not in ("mgaug_tf_cli", "mgaug_tf"):
        raise
    sys.exit("mgaug-tf is not installed in this Python; run `pip install -e .` in the "
             "checkout first.")

if __name__ == "__main__":
    main()
