"""Choosing a k-fold search's winner when its scores are noisy.

Every trial of a search is scored on the same folds, with the same fold seeds
(`tuning.kfold.CrossValidated`), so two configurations are compared fold by
fold: the paired differences cancel what makes one fold harder than another,
which on 100 points is most of the spread. The differences are of the scores'
logarithms, since the scores are errors (val_mse) whose folds span orders of
magnitude (0.04 to 1.1 for one configuration on one data set): a plain
difference would be the hardest fold's alone, where a log ratio weighs every
fold alike, so a configuration 30% better on every fold is clearly better.
The one-standard-error rule then treats every configuration within one
standard error of the best as no worse than it, and among those takes the
one closest to the run's own recipe: a search changes the recipe only for a
difference larger than the noise. Scores are positive; lower is better.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def paired_difference(scores: Sequence[float], reference: Sequence[float]
                      ) -> tuple[float, float]:
    """Mean and standard error of `log(scores) - log(reference)`, fold by fold.

    A mean of -0.2 says the scores are exp(-0.2) = 0.82 times the reference's,
    fold by fold (geometrically).

    Returns:
        `(mean, standard_error)`; the standard error is the sample standard
        deviation of the differences over sqrt(k), infinite for one fold.

    Raises:
        ValueError: the two have different numbers of folds, or a score is not
            positive.
    """
    scores, reference = np.asarray(scores, np.float64), np.asarray(reference, np.float64)
    if scores.shape != reference.shape:
        raise ValueError(f"fold scores of shapes {scores.shape} and {reference.shape}: "
                         "paired differences need the same folds")
    if (scores <= 0).any() or (reference <= 0).any():
        raise ValueError("log ratios need positive scores (errors such as val_mse)")
    differences = np.log(scores) - np.log(reference)
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
        of the best), `"margin"` and `"standard_error"` (the mean log ratio of
        the baseline's scores to the winner's, fold by fold, and its standard
        error; None without a baseline) and `"reason"`, one sentence.

    Raises:
        ValueError: no record completed.
    """
    done = [record for record in records if "mean" in record]
    if not done:
        raise ValueError("no trial completed; nothing to choose from")
    best = min(done, key=_mean_log)
    within = []
    for record in done:
        mean, error = paired_difference(record["fold_scores"], best["fold_scores"])
        if mean <= error:
            within.append(record)
    winner = min(within, key=lambda record: (distance(record), _mean_log(record)))
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
                            f"the best (the best's {_ratio(best_margin, best_error)}); it "
                            "is kept")
    else:
        choice["reason"] = (f"beats the run's own configuration ({_ratio(margin, error)}), "
                            f"and is the closest to it of the {len(within)} within one "
                            "standard error of the best")
    return choice


def _mean_log(record: dict) -> float:
    """A record's mean log score: what the best is the lowest of."""
    return float(np.mean(np.log(record["fold_scores"])))


def _ratio(margin: float, error: float) -> str:
    """A log-ratio margin in words, e.g. "fold errors x0.82, log ratio 0.2 ± 0.05"."""
    return f"fold errors x{math.exp(-margin):.2f}, log ratio {margin:.3g} ± {error:.2g}"
