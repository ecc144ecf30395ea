"""Runs an installed mgaug-tf program from a checkout's `trainers/*.py` script."""

import importlib
import sys


def run(module):
    """Runs `mgaug_tf_cli.<module>.main()`, or says how to install the package first."""
    try:
        program = importlib.import_module(f"mgaug_tf_cli.{module}")
    except ModuleNotFoundError as error:
        if error.name not in ("mgaug_tf_cli", "mgaug_tf"):
            raise
        sys.exit("mgaug-tf is not installed in this Python; run `pip install -e .` in the "
                 "checkout first.")
    # absl's --help prints the __main__ module's docstring: the program's, not this script's.
    sys.modules["__main__"].__doc__ = program.__doc__
    program.main()
