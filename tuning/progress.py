"""One line per finished trial, for any KerasTuner tuner, through one mixin.

KerasTuner's own display prints a table per trial and Keras a bar per epoch;
over dozens of trials that buries what matters. `TrialLines` replaces both
with one line per finished trial (its values, how it went, seconds, the best
so far, time since the start) and hides TensorFlow's retracing warnings, which
a search of fresh models triggers by design:

    class QuietGridSearch(TrialLines, keras_tuner.GridSearch): ...

A subclass says how a finished trial went by overriding `trial_outcome`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time

import keras_tuner
import tensorflow as tf
from keras_tuner.engine.hyperparameters import Fixed


@contextlib.contextmanager
def quiet_retracing():
    """Hides TensorFlow's "triggered tf.function retracing" warnings.

    Every trial (and fold) is a new model with its own training function, so
    the retracing the warning is about is the point, not a mistake.
    """
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def describe_values(values: dict, space: keras_tuner.HyperParameters) -> str:
    """A trial's values of the searched hyperparameters (not the `Fixed` ones), compactly."""
    shown = []
    for p in space.space:
        if isinstance(p, Fixed) or p.name not in values:
            continue
        value = values[p.name]
        shown.append(f"{p.name}={value:.3g}" if isinstance(value, float) else f"{p.name}={value}")
    return " ".join(shown) or "fixed configuration"


def trial_number(trial_id: str) -> int:
    """A trial's number for people, from 1 (KerasTuner's ids and its `trial_<id>`
    folders count from 0: "00", "01", ...)."""
    return int(trial_id) + 1


class TrialLines:
    """Mixin for a `keras_tuner.Tuner` subclass: one line per finished trial.

    Put it before the tuner in the bases. `search` defaults to `verbose=0`, so
    KerasTuner's tables and Keras' bars stay quiet.

    Args:
        stream: Where the lines go (default stdout).
        describe: Formats a trial's hyperparameter values for its line
            (default: every value that is not `Fixed`).
        started: The `time.perf_counter()` the elapsed time counts from
            (default: the start of `search`), for searches run in stages.
        *args, **kwargs: The tuner's own arguments.
    """

    def __init__(self, *args, stream=None, describe=None, started: float | None = None,
                 **kwargs):
        self.stream = stream
        self.describe = describe
        self._started = started
        self._search_started = None
        # KerasTuner prints "Reloading Tuner from ..." when it resumes; the
        # commands say so in their own words.
        with contextlib.redirect_stdout(io.StringIO()):
            super().__init__(*args, **kwargs)

    def search(self, *fit_args, verbose=0, **fit_kwargs):
        """KerasTuner's `search`, quiet by default; see the class doc."""
        self._search_started = self._started or time.perf_counter()
        with quiet_retracing():
            return super().search(*fit_args, verbose=verbose, **fit_kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        print(self.trial_line(trial), file=self.stream or sys.stdout, flush=True)

    def trial_line(self, trial) -> str:
        """One line on a finished trial: its values, outcome, best so far, elapsed."""
        total = self.oracle.max_trials
        number = f"trial {trial_number(trial.trial_id)}" + (f"/{total}" if total else "")
        values = (self.describe(trial.hyperparameters.values) if self.describe
                  else describe_values(trial.hyperparameters.values, self.oracle.get_space()))
        best = self.oracle.get_best_trials(1)
        best = (f"best {best[0].score:.4g} (trial {trial_number(best[0].trial_id)})"
                if best and best[0].score is not None else "best -")
        started = self._search_started or time.perf_counter()
        elapsed = time.perf_counter() - started
        return f"{number}  {values}  {self.trial_outcome(trial)}  {best}  [{elapsed:.0f}s]"

    def trial_outcome(self, trial) -> str:
        """How a finished trial went: its score, or why it failed."""
        if trial.status != keras_tuner.engine.trial.TrialStatus.COMPLETED:
            message = (trial.message or "").strip().splitlines()
            return f"failed: {message[-1] if message else trial.status}"
        return f"{self.oracle.objective.name} {trial.score:.4g}"
