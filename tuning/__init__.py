"""KerasTuner searches for both tasks.

The tasks' `build_model(hp)` functions already take a
`keras_tuner.HyperParameters`, and `hw1_keras.regression.model.RegressionHyperModel`
is a ready `keras_tuner.HyperModel`; the k-fold tuner and the `--tune` searches
(issue #4) build on those.
"""
