"""The `--tune` options of `python run.py regression`, without importing TensorFlow.

The CLI builds these before importing anything heavy, so that a bad value is
answered at once, in one line.
"""

from __future__ import annotations

import dataclasses

from hw1_keras.errors import InputError

DEFAULT_TRIALS = 20
DEFAULT_FOLDS = 5
# Stage 1 screens many configurations coarsely: at most this many folds, and
# the configured epochs divided by this factor.
SCREEN_FOLDS = 3
SCREEN_EPOCH_DIVISOR = 5
# --cv: what a fold's validation score measures (see `tuning.folds.cv_folds`).
CV_KINDS = ("interior", "random", "contiguous")
CV_HELP = {
    "interior": "held-out stretches of x with training data on both sides: how a model "
                "bridges a gap inside the data's range, as the test's dark intervals ask; "
                "the lowest and highest points are always trained on",
    "random": "a random split, as the homework did: every validation point has training "
              "neighbours, so it scores fitting the noise more than bridging gaps",
    "contiguous": "stretches of x from end to end: the first and last folds score "
                  "extrapolation beyond the data's range, which the test never asks for",
}


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """How `regression --tune` searches.

    Attributes:
        trials: Stage 1's random-search trials; 0 skips stage 1 and centres
            the grid on the configured model.
        folds: k of stage 2's k-fold cross-validation (stage 1 uses
            `min(folds, SCREEN_FOLDS)`).
        homework_grid: Stage 2 searches the homework's grid (lr 4e-4, 5e-4,
            6e-4; weight decay 1.3e-3, 1.5e-3, 1.7e-3; batch 50, 100) instead
            of a grid around stage 1's winner.
        refine: The grid varies the learning rate and weight decay around
            the screen's winner; False scores that winner alone at the full
            budget (3 x 3 times cheaper; the family benchmark's budget).
        fresh: Delete an earlier search in the run folder instead of resuming.
        cv: How the folds are made, one of `CV_KINDS` (see `CV_HELP`):
            "interior" by default, as it scores what the test measures.
    """

    trials: int = DEFAULT_TRIALS
    folds: int = DEFAULT_FOLDS
    homework_grid: bool = False
    refine: bool = True
    fresh: bool = False
    cv: str = "interior"

    def __post_init__(self):
        if self.trials < 0:
            raise InputError(f"--trials got {self.trials}; expected a whole number >= 0 "
                             "(0 skips the random search)")
        if self.folds < 2:
            raise InputError(f"--folds got {self.folds}; k-fold cross-validation needs "
                             "at least 2 folds")
        if self.cv not in CV_KINDS:
            raise InputError(f"--cv got {self.cv!r}; expected one of {', '.join(CV_KINDS)}")

    @property
    def screen_folds(self) -> int:
        """Stage 1's k: `folds`, but at most `SCREEN_FOLDS`."""
        return min(self.folds, SCREEN_FOLDS)

    def identity(self) -> dict:
        """What makes two searches the same search (resuming must not mix them)."""
        return {"trials": self.trials, "folds": self.folds,
                "homework_grid": self.homework_grid, "cv": self.cv, "refine": self.refine}
