"""k-fold cross-validation for KerasTuner's Keras tuners, through one mixin.

KerasTuner scores a trial on one validation set. With little data (the
regression task has 100 points) that score depends on which points happen to
be held out, so the homework scored each configuration by k-fold
cross-validation instead: the mean over folds of each fold's best validation
value. `CrossValidated` adds that to any `keras_tuner.Tuner` subclass by
overriding `run_trial`, KerasTuner's extension point for custom trials; the
oracle (random, grid, Bayesian, ...) is untouched:

    class KFoldRandomSearch(CrossValidated, keras_tuner.RandomSearch): ...

    tuner = KFoldRandomSearch(hypermodel, objective=keras_tuner.Objective("val_mse", "min"),
                              max_trials=20, folds=5, directory="runs", project_name="cv")
    tuner.search(x, y, epochs=100)  # fit arguments, minus validation_data

Each trial builds a fresh model per fold and trains it with the hypermodel's
`fit(hp, model, x_train, y_train, validation_data=(x_val, y_val), **kwargs)`,
so batch size and epochs are tunable there as usual. A hypermodel may also
offer `fit_folds(hp, models, x, y, folds, **kwargs)` to train the k models at
once (see `hw1_keras.regression.model`); it is used when present.

The trial's metrics, stored by the oracle (and so sent to the chief in
KerasTuner's distributed mode) are the objective (the mean over folds),
`<objective>_std`, `<objective>_fold_<i>` per fold and `seconds`.
"""

from __future__ import annotations

import math
import time

import keras
import keras_tuner
import numpy as np

from hw1_keras import devices
from hw1_keras.errors import InputError  # A ValueError.
from tuning.folds import check_folds, cv_folds
from tuning.grid import ResumableGrid
from tuning.progress import TrialLines


def grid_size(hyperparameters: keras_tuner.HyperParameters) -> int:
    """The number of combinations a grid search over `hyperparameters` visits.

    Counts every value of each `Choice`, `Boolean`, `Fixed` and stepped
    `Int`/`Float`; conditional hyperparameters are counted as if always
    active, so for those it is an upper bound.
    """
    return math.prod(len(list(hp.values)) for hp in hyperparameters.space)


def _as_history(result) -> dict | float:
    """What `fit` returned, as a dict of per-epoch lists, a dict of floats or a float."""
    return result.history if hasattr(result, "history") else result


class CrossValidated(TrialLines):
    """k-fold cross-validation mixin for a `keras_tuner.Tuner` subclass.

    Put it first in the bases, e.g. `class KFoldGridSearch(CrossValidated,
    keras_tuner.GridSearch)`; the tuner's own arguments pass through.

    Args:
        folds: k, the number of folds (>= 2).
        cv: How the folds are made (`cv_folds`): "random" (the default),
            "interior" or "contiguous" stretches of the first input column.
        fold_seed: Seeds the split (identical for every trial) and the models:
            fold i's model is built right after `keras.utils.set_random_seed(
            fold_seed + i)`, so trials differ only in their hyperparameters and
            a rerun of a trial repeats it.
        *args, **kwargs: `TrialLines`' (`stream`, `describe`: the one line
            per finished trial) and the tuner's own arguments. `objective`
            must be a single objective that `fit` logs per epoch (e.g.
            "val_mse").
    """

    def __init__(self, *args, folds: int = 5, fold_seed: int = 0, cv: str = "random",
                 **kwargs):
        check_folds(folds)
        self.folds = folds
        self.cv = cv
        self.fold_seed = fold_seed
        self._results: dict[str, dict] = {}
        super().__init__(*args, **kwargs)
        objective = self.oracle.objective
        # Not a subclass: MultiObjective, or the DefaultObjective of no objective.
        if type(objective) is not keras_tuner.Objective:
            raise InputError(
                f"objective {objective.name!r}: k-fold cross-validation needs one named "
                "objective with a direction, e.g. keras_tuner.Objective('val_mse', 'min')"
            )

    # --- the search -------------------------------------------------------------

    def search(self, x, y, *fit_args, verbose=0, **fit_kwargs):
        """Runs the search; `x` and `y` are split into folds for every trial.

        Args:
            x: All inputs, an array (or anything `np.asarray` takes).
            y: All targets.
            *fit_args, **fit_kwargs: Passed on to the hypermodel's `fit` (not
                `validation_data`: each fold is the validation set of its turn);
                `fit_folds` is used only when there are no positional ones.
            verbose: KerasTuner's and Keras' verbosity; 0 (the default) keeps
                the search to this tuner's one line per finished trial.

        Raises:
            InputError: an impossible search (too many folds for the data,
                `validation_data` given, no trial to run).
        """
        if "validation_data" in fit_kwargs:
            raise InputError("validation_data: k-fold cross-validation validates on each "
                             "fold in turn; pass only the training data")
        if len(x) != len(y):
            raise InputError(f"x has {len(x)} samples but y has {len(y)}")
        check_folds(self.folds, len(x))
        cv_folds(self.cv, np.asarray(x), self.folds, self.fold_seed)  # Possible at all?
        max_trials = self.oracle.max_trials
        if max_trials is not None and max_trials < 1:
            raise InputError(f"max_trials={max_trials}: nothing to search; use >= 1")
        return super().search(x, y, *fit_args, verbose=verbose, **fit_kwargs)

    def run_trial(self, trial, x, y, *fit_args, **fit_kwargs):
        """Cross-validates one configuration; returns the metrics dict (see module doc)."""
        started = time.perf_counter()
        hp = trial.hyperparameters
        x = np.asarray(x)
        y = np.asarray(y)
        folds = cv_folds(self.cv, x, self.folds, self.fold_seed)
        devices.clear_session()  # Frees the previous trial's models (runs gc too).
        fit_folds = getattr(self.hypermodel, "fit_folds", None)
        if callable(fit_folds) and not fit_args:
            models = [self._build_fold_model(hp, fold) for fold in range(self.folds)]
            histories = fit_folds(hp, models, x, y, folds, **fit_kwargs)
        else:
            callbacks = fit_kwargs.pop("callbacks", [])
            histories = []
            for fold, (train, valid) in enumerate(folds):
                model = self._build_fold_model(hp, fold)
                histories.append(self.hypermodel.fit(
                    hp, model, x[train], y[train], *fit_args,
                    validation_data=(x[valid], y[valid]),
                    callbacks=self._deepcopy_callbacks(callbacks), **fit_kwargs))
        scores = [self._best_value(history) for history in histories]
        if not all(math.isfinite(score) for score in scores):
            # FAILED, not INVALID: a rerun with the same seeds would diverge again.
            raise keras_tuner.errors.FailedTrialError(
                f"a fold's {self.oracle.objective.name} is not finite ({scores}): the "
                "training diverged")
        name = self.oracle.objective.name
        metrics = {
            name: float(np.mean(scores)),
            f"{name}_std": float(np.std(scores)),
            **{f"{name}_fold_{fold}": score for fold, score in enumerate(scores)},
            "seconds": time.perf_counter() - started,
        }
        self._results[trial.trial_id] = metrics
        return metrics

    def _build_fold_model(self, hp, fold: int) -> keras.Model:
        """Fold `fold`'s fresh model, with the checks of KerasTuner's own `_try_build`."""
        keras.utils.set_random_seed(self.fold_seed + fold)
        model = self._build_hypermodel(hp)
        if not isinstance(model, keras.Model):
            raise keras_tuner.errors.FatalTypeError(
                f"the hypermodel's build() returned {type(model).__name__}, not a Keras Model")
        size = model.count_params() if model.built else 0
        if self.max_model_size and size > self.max_model_size:
            raise keras_tuner.errors.FailedTrialError(
                f"Oversized model: {size} parameters > max_model_size {self.max_model_size}")
        return model

    def _best_value(self, result) -> float:
        """A fold's best objective value over its epochs (min or max per the objective)."""
        objective = self.oracle.objective
        result = _as_history(result)
        if isinstance(result, dict):
            if objective.name not in result:
                raise keras_tuner.errors.FatalValueError(
                    f"the fit history has no {objective.name!r} (it has {sorted(result)}); "
                    "name an objective that fit logs, such as 'val_loss'")
            result = result[objective.name]
        values = np.asarray(result, np.float64).reshape(-1)
        if not np.isfinite(values).any():
            return math.nan
        return float(np.nanmin(values) if objective.direction == "min" else np.nanmax(values))

    def load_model(self, trial):
        """Not available: a trial trains k models, none of which saw all the data."""
        raise NotImplementedError(
            "a k-fold trial keeps no model; build and train one on all the data from "
            "get_best_hyperparameters()")

    # --- progress ---------------------------------------------------------------

    def trial_outcome(self, trial) -> str:
        """The mean over folds, its std, the folds' range and the seconds; or why it failed."""
        result = self._results.pop(trial.trial_id, None)
        if result is None:
            return super().trial_outcome(trial)
        name = self.oracle.objective.name
        folds = [result[f"{name}_fold_{fold}"] for fold in range(self.folds)]
        return (f"{name} {result[name]:.4g} ± {result[f'{name}_std']:.2g} "
                f"(folds {min(folds):.4g}..{max(folds):.4g})  {result['seconds']:.1f}s")


class KFoldRandomSearch(CrossValidated, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch`, each trial scored by k-fold cross-validation."""


class KFoldGridSearch(CrossValidated, ResumableGrid, keras_tuner.GridSearch):
    """`keras_tuner.GridSearch`, each trial scored by k-fold cross-validation.

    Reloaded from its folder, it visits the rest of its grid (`ResumableGrid`).
    """
