"""Choosing a k-fold search's winner when its scores are noisy.

Every trial of a search is scored on the same folds, with the same fold seeds
(`tuning.kfold.CrossValidated`), so two configurations are compared fold by
fold: the paired differences cancel what makes one fold harder than another,
which on 100 points is most of the spread. The one-standard-error rule then
treats every configuration within one standard error of the best as no
worse than it, and among those takes the one closest to the run's own
recipe: a search changes the recipe only for a difference larger than the
noise. Lower scores are better (e.g. val_mse).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def paired_difference(scores: Sequence[float], reference: Sequence[float]
                      ) -> tuple[float, float]:
    """Mean and standard error of `scores - reference`, fold by fold.

    Returns:
        `(mean, standard_error)`; the standard error is the sample standard
        deviation of the differences over sqrt(k), infinite for one fold.

    Raises:
        ValueError: the two have different numbers of folds.
    """
    scores, reference = np.asarray(scores, np.float64), np.asarray(reference, np.float64)
    if scores.shape != reference.shape:
        raise ValueError(f"fold scores of shapes {scores.shape} and {reference.shape}: "
                         "paired differences need the same folds")
    differences = scores - reference
    if len(differences) < 2:
        return float(differences.mean()), math.inf
    return (float(differences.mean()),
            float(differences.std(ddof=1) / math.sqrt(len(differences))))


def one_standard_error(records: list[dict], baseline_id: str | None,
                       distance: Callable[[dict], float]) -> dict:
    """The one-standard-error choice among completed k-fold trials.

    Args:
        records: Trials with `trial_id`, `mean` and `fold_scores` (as
            `tuning.report.trial_records` gives them); others are ignored.
        baseline_id: The trial of the run's own configuration, if it
            completed; it wins whenever it is within the noise of the best.
        distance: How far a record's configuration is from the run's own
            (0 for the baseline); the closest of those within the noise wins.

    Returns:
        `{"winner", "best", "baseline"}` (records; baseline None if it did
        not complete), `"within_noise"` (trial ids within one standard error
        of the best), `"margin"` and `"standard_error"` (the baseline's score
        minus the winner's, fold by fold; None without a baseline) and
        `"reason"`, one sentence.

    Raises:
        ValueError: no record completed.
    """
    done = [record for record in records if "mean" in record]
    if not done:
        raise ValueError("no trial completed; nothing to choose from")
    best = min(done, key=lambda record: record["mean"])
    within = []
    for record in done:
        mean, error = paired_difference(record["fold_scores"], best["fold_scores"])
        if mean <= error:
            within.append(record)
    winner = min(within, key=lambda record: (distance(record), record["mean"]))
    baseline = next((r for r in done if r["trial_id"] == baseline_id), None)
    choice = {"winner": winner, "best": best, "baseline": baseline,
              "within_noise": [record["trial_id"] for record in within],
              "margin": None, "standard_error": None}
    if baseline is None:
        choice["reason"] = (f"the run's own configuration has no score; of the "
                            f"{len(within)} within one standard error of the best, the "
                            "closest to it")
        return choice
    margin, error = paired_difference(baseline["fold_scores"], winner["fold_scores"])
    choice.update(margin=margin, standard_error=error)
    if winner is baseline:
        best_margin, best_error = paired_difference(baseline["fold_scores"],
                                                    best["fold_scores"])
        choice["reason"] = (f"the run's own configuration is within one standard error of "
                            f"the best (behind by {best_margin:.3g} ± {best_error:.2g}); "
                            "it is kept")
    else:
        choice["reason"] = (f"beats the run's own configuration by {margin:.3g} ± {error:.2g} "
                            "(paired over folds), and is the closest to it of the "
                            f"{len(within)} within one standard error of the best")
    return choice
