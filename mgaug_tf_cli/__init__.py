"""The command-line programs of mgaug-tf (imports no TensorFlow).

`mgaug-train` (`train.py`: train, evaluate, export), `mgaug-predict`,
`mgaug-report`, `mgaug-compare` and `mgaug-study`. A package of its own
beside `mgaug_tf` so that a program can set up its quiet start (`quiet`)
before the library, and with it TensorFlow, is imported.
"""
