"""Command-line programs: `run.py` (train, evaluate, export) and `predict.py`."""
