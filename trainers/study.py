"""`python trainers/study.py` in a checkout: the `mgaug-study` program (`mgaug_tf_cli/study.py`).

Needs the package installed (`pip install -e .` in the checkout).
"""

import sys

try:
    from mgaug_tf_cli.study import main
except ModuleNotFoundError as error:
    if error.name not in ("mgaug_tf_cli", "mgaug_tf"):
        raise
    sys.exit("mgaug-tf is not installed in this Python; run `pip install -e .` in the "
             "checkout first.")

if __name__ == "__main__":
    main()
