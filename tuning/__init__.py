"""KerasTuner searches for both tasks.

* `tuning.kfold`: k-fold cross-validation for any KerasTuner Keras tuner, as a
  mixin (`KFoldRandomSearch`, `KFoldGridSearch`); it needs nothing of this
  project but `hw1_keras.errors.InputError` (a ValueError), `tuning.folds`
  (how the data is split, pure NumPy) and `tuning.progress`.
* `tuning.progress`: one line per finished trial for any KerasTuner tuner.
* `tuning.regression`: `python run.py regression --tune`, a random screen then
  a k-fold grid, the winner trained and exported like a plain run;
  `tuning.regression_space` holds what the stages search.
* `tuning.mnist_studies`: `python run.py mnist --tune`, the homework's
  one-factor studies as grid searches, the best setting retrained and
  exported like a plain run; `tuning.mnist_trial` trains one setting,
  `tuning.mnist_report` reads the trials into the decision, `tuning.mnist_writeup`
  writes it up (`studies.md`, the plots, the printed lines),
  `tuning.mnist_settings` holds the studies, the options and the budget,
  `tuning.mnist_combine` the rule from studies to one model, both
  importable without TensorFlow.
* `tuning.distributed`: KerasTuner's chief/worker mode for searches in stages.
* `tuning.resume`: resume a search in a run folder, refuse to mix two.
* `tuning.grid`: a KerasTuner `GridSearch` that walks on after a reload.
* `tuning.report`: the regression search's choice, `tuning.json` and `tuning.png`.
* `tuning.settings`: the `--tune` options, importable without TensorFlow.
"""
