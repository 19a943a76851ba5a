"""The one-standard-error choice among k-fold trials, alone and inside `regression --tune`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tuning.select import one_standard_error, paired_difference

OWN = [1.0, 2.0, 3.0, 4.0, 5.0]


def record(trial_id, scores, far=1.0):
    return {"trial_id": trial_id, "fold_scores": list(scores), "mean": float(np.mean(scores)),
            "far": far}


def choose(records, baseline_id="own"):
    return one_standard_error(records, baseline_id, lambda r: r["far"])


def test_paired_difference_cancels_what_the_folds_share():
    # The folds differ fivefold, the configurations by a steady 10%: a clear difference.
    mean, error = paired_difference([1.1 * score for score in OWN], OWN)
    assert mean == pytest.approx(math.log(1.1)) and error == pytest.approx(0.0, abs=1e-12)
    noisy = [1.3, 1.9, 3.2, 3.8, 5.3]
    mean, error = paired_difference(noisy, OWN)
    logs = np.log(noisy) - np.log(OWN)
    assert mean == pytest.approx(logs.mean())
    assert error == pytest.approx(np.std(logs, ddof=1) / math.sqrt(5))
    assert paired_difference([1.0], [2.0]) == (pytest.approx(-math.log(2)), math.inf)
    with pytest.raises(ValueError, match="same folds"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        paired_difference([0.0, 2.0], [1.0, 2.0])


def test_a_fold_that_is_hard_for_everyone_does_not_decide_alone():
    # Better by half on four folds, a little worse on the hard one: a plain
    # difference of means calls it worse, the paired log ratios clearly better.
    own = record("own", [0.1, 0.1, 0.1, 0.1, 5.0], far=0.0)
    other = record("other", [0.05, 0.05, 0.05, 0.05, 5.5])
    assert other["mean"] > own["mean"]
    assert choose([own, other])["winner"] is other


def test_scores_within_the_noise_keep_the_own_configuration():
    own = record("own", OWN, far=0.0)
    # Better on average, but up on some folds and down on others.
    noisy = record("other", [0.6, 2.5, 2.5, 4.6, 4.7])
    choice = choose([noisy, own])
    assert choice["best"] is noisy and choice["winner"] is own
    assert set(choice["within_noise"]) == {"own", "other"}
    assert choice["margin"] == 0.0 and "kept" in choice["reason"]
    assert paired_difference(noisy["fold_scores"], OWN)[0] < 0  # Better on average.


def test_a_clearly_better_configuration_wins_and_says_by_how_much():
    own = record("own", OWN, far=0.0)
    better = record("better", [0.8, 1.7, 2.8, 3.6, 4.6], far=1.0)
    choice = choose([own, better])
    assert choice["winner"] is better and choice["within_noise"] == ["better"]
    margin, error = paired_difference(OWN, better["fold_scores"])
    assert (choice["margin"], choice["standard_error"]) == (margin, error)
    assert margin > error > 0
    assert f"{margin:.3g} ± {error:.2g}" in choice["reason"]


def test_among_those_within_the_noise_the_closest_to_the_own_wins():
    own = record("own", OWN, far=0.0)
    best = record("best", [0.5 * score for score in OWN], far=3.0)
    near = record("near", [0.55, 0.97, 1.56, 2.0, 2.5], far=1.0)  # Inside best's noise.
    choice = choose([own, best, near])
    assert choice["best"] is best and choice["winner"] is near


def test_failed_trials_and_a_missing_baseline():
    failed = {"trial_id": "x", "status": "FAILED"}
    only = record("a", OWN)
    choice = choose([failed, only], baseline_id=None)
    assert choice["winner"] is only and choice["margin"] is None
    with pytest.raises(ValueError, match="no trial completed"):
        choose([failed])


# --- Inside `regression --tune`: a fake trial returns fixed fold scores ------------------

def fake_scores(own_scores, other_scores):
    """A `run_trial` scoring the default recipe `own_scores`, everything else `other_scores`."""
    from hw1_keras.regression.config import RegressionConfig

    base = RegressionConfig()

    def run_trial(self, trial, x, y, *args, **kwargs):
        values = trial.hyperparameters.values
        own = (values.get("learning_rate") == base.learning_rate
               and values.get("weight_decay") == base.weight_decay
               and values.get("units_1") == base.units[0] and values.get("depth") == 2)
        scores = own_scores if own else other_scores
        scores = scores[:self.folds]
        return {"val_mse": float(np.mean(scores)), "val_mse_std": float(np.std(scores)),
                **{f"val_mse_fold_{i}": s for i, s in enumerate(scores)}, "seconds": 0.01}

    return run_trial


@pytest.mark.parametrize("other, kept", [
    ([0.9, 2.2, 2.7, 4.3, 4.8], True),  # Within the noise: the default stays.
    ([0.5, 1.4, 2.6, 3.3, 4.4], False),  # Clearly better: it wins.
])
@pytest.mark.integration  # A whole command, in this process.
def test_tune_keeps_the_default_unless_something_is_clearly_better(tmp_path, capsys,
                                                                  monkeypatch, other, kept):
    from hw1_keras.cli import main
    from tuning.kfold import CrossValidated

    monkeypatch.setattr(CrossValidated, "run_trial", fake_scores(OWN, other))
    out = tmp_path / "run"
    argv = ["regression", "--tune", "--trials", "2", "--epochs", "4", "--log-every", "2",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "tuning.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tuning"]["kept_own_configuration"] is kept
    assert (summary["choice"]["winner"] == summary["choice"]["baseline"]) is kept
    assert (metrics["config"]["learning_rate"] == 4e-4) is kept
    assert summary["choice"]["reason"] in printed
