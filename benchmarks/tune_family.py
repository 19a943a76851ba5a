"""`python run.py bench tune --family`: does the search beat the default on data it never saw?

For each of the 24 data sets of `hw1_keras.regression.family.family()` (4 target
shapes x 3 cluster layouts x 2 noise levels), from its training points only:

* the default recipe, trained with seed 0: one network, and an ensemble of
  `ENSEMBLE` seeds;
* `regression --tune` on the same points, with a smaller budget than the
  command's default (`TRIALS` screening trials instead of 20, everything else
  as the command runs it), its choice trained as one network and as an
  ensemble of `ENSEMBLE`.

Each is judged on the set's test points (all, inside the two dark intervals,
outside). A tuned model "wins" where its test MSE is under `TIE` times the
default's, "loses" where it is over 1 / `TIE` times, and ties in between.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from benchmarks.common import row
from hw1_keras.errors import InputError
from hw1_keras.export import load_endpoint
from hw1_keras.regression import data as regression_data
from hw1_keras.regression import family as regression_family
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.train import evaluate, train_model
from tuning.regression import tune
from tuning.regression_space import describe
from tuning.settings import TuneSettings

# The search's budget per data set, smaller than `regression --tune`'s (20
# screening trials and a 3 x 3 grid around the winner) to fit 45 minutes:
TRIALS = 10  # screening trials,
REFINE = False  # and the screen's winner alone at the full budget, no grid around it.
ENSEMBLE = 5
TIE = 0.95  # Ratios within [0.95, 1/0.95] are ties.
ERROR_KEYS = ("test_mse", "test_mse_gaps", "test_mse_outside")


class _Endpoint:
    """An exported SavedModel with the `predict` that `evaluate` calls."""

    def __init__(self, path: Path):
        self.serve = load_endpoint(path)

    def predict(self, x, verbose=0):
        return np.asarray(self.serve(tf.constant(x, tf.float32)))


def _errors(model, member) -> dict:
    """Test MSE of `model` on `member`: all points, inside its gaps, outside."""
    result = evaluate(model, member.train, member.test, list(member.gaps))
    return {key: result[key] for key in ERROR_KEYS}


def _trained(config: RegressionConfig, member) -> dict:
    model, _, _ = train_model(config, member.train, member.test, verbose=False)
    return _errors(model, member)


def verdict(ratio: float) -> str:
    """"win", "tie" or "loss" for a tuned/default test MSE ratio."""
    if ratio < TIE:
        return "win"
    return "loss" if ratio > 1 / TIE else "tie"


def geometric_mean(values) -> float:
    """The geometric mean of positive numbers."""
    return float(math.exp(np.mean(np.log(values))))


def run_member(member, folder: Path, *, cv: str = "interior", trials: int = TRIALS,
               ensemble: int = ENSEMBLE) -> dict:
    """Default and tuned, single and ensemble, on one family data set.

    Args:
        member: The data set.
        folder: An empty folder for its CSV files and the search's run folder.
        cv: The search's `--cv`.
        trials: The search's `--trials`.
        ensemble: Seeds of the ensembles.
    """
    started = time.perf_counter()
    regression_data.write_csv(member.train, folder / "train.csv")
    regression_data.write_csv(member.test, folder / "test.csv")
    config = RegressionConfig(train=str(folder / "train.csv"), test=str(folder / "test.csv"))
    result = {"name": member.name, "default": _trained(config, member),
              f"default_x{ensemble}": _trained(dataclasses.replace(config, ensemble=ensemble),
                                               member)}
    with contextlib.redirect_stdout(io.StringIO()):  # The search's trial lines.
        metrics = tune(config, TuneSettings(trials=trials, cv=cv, refine=REFINE), str(folder / "tune"))
    chosen = RegressionConfig(**{**metrics["config"], "train": config.train,
                                 "test": config.test})
    result["tuned"] = _errors(_Endpoint(folder / "tune" / "saved_model"), member)
    result[f"tuned_x{ensemble}"] = _trained(dataclasses.replace(chosen, ensemble=ensemble),
                                            member)
    summary = json.loads((folder / "tune" / "tuning.json").read_text())
    result["choice"] = {"kept_default": metrics["tuning"]["kept_own_configuration"],
                        "configuration": describe(summary["winner"]["hyperparameters"]),
                        "reason": metrics["tuning"]["reason"]}
    result["seconds"] = time.perf_counter() - started
    return result


def _show(errors: dict) -> str:
    return (f"{errors['test_mse']:.4f} ({errors['test_mse_gaps']:.3f} / "
            f"{errors['test_mse_outside']:.3f})")


DEFAULT_OUT = "runs/bench-family"


def _budget(cv: str) -> dict:
    """What makes two runs of this benchmark comparable; kept beside their results."""
    return {"family_seed": regression_family.FAMILY_SEED, "trials": TRIALS, "refine": REFINE,
            "ensemble": ENSEMBLE, "cv": cv, "epochs": RegressionConfig().epochs}


def _results_folder(out: Path, cv: str) -> Path:
    """`out`/sets, after checking that results already there were made with this budget."""
    budget = _budget(cv)
    stamp = out / "budget.json"
    if stamp.exists():
        earlier = json.loads(stamp.read_text())
        if earlier != budget:
            changed = ", ".join(f"{key} {earlier.get(key)!r} -> {value!r}"
                                for key, value in budget.items() if earlier.get(key) != value)
            raise InputError(f"--out {out}: holds results of another budget ({changed}); "
                             "give another --out, or delete that folder")
    (out / "sets").mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(budget, indent=1) + "\n")
    return out / "sets"


def main(args) -> dict:
    """Runs the family benchmark; prints one row per data set, then the tally.

    Each data set's result lands in `--out` (default `runs/bench-family`) as
    soon as it is measured, so an interrupted benchmark resumes where it
    stopped when run again.
    """
    members = regression_family.family()
    limit = getattr(args, "limit", None)
    members = members[:limit] if limit else members
    out = Path(args.out or DEFAULT_OUT)
    sets = _results_folder(out, args.cv)
    print(f"{len(members)} data sets (hw1_keras.regression.family, seed "
          f"{regression_family.FAMILY_SEED}); search budget: {TRIALS} screening trials "
          f"x 3 folds, then {'a grid around ' if REFINE else ''}the screen's winner and the "
          f"default scored by 5-fold {args.cv} CV at "
          f"the full {RegressionConfig().epochs} epochs); ensembles of {ENSEMBLE} seeds")
    done = sum((sets / f"{index:02d}.json").exists() for index in range(len(members)))
    if done:
        print(f"resuming: {done} of {len(members)} data sets already measured in {out}")
    print("test MSE (gaps / outside): default | tuned | ratio | verdict; "
          f"then the same at {ENSEMBLE} seeds")
    started = time.perf_counter()
    results = []
    for index, member in enumerate(members):
        saved = sets / f"{index:02d}.json"
        if saved.exists():
            result = json.loads(saved.read_text())
        else:
            with tempfile.TemporaryDirectory() as scratch:
                result = run_member(member, Path(scratch), cv=args.cv)
            for suffix in ("", f"_x{ENSEMBLE}"):
                result[f"ratio{suffix}"] = (result[f"tuned{suffix}"]["test_mse"]
                                            / result[f"default{suffix}"]["test_mse"])
            saved.with_suffix(".partial").write_text(json.dumps(result, indent=1) + "\n")
            saved.with_suffix(".partial").replace(saved)
        results.append(result)
        row(member.name, f"{_show(result['default'])} | {_show(result['tuned'])} | "
                         f"{result['ratio']:.2f} | {verdict(result['ratio'])}", width=30)
        row(f"  x{ENSEMBLE}", f"{_show(result[f'default_x{ENSEMBLE}'])} | "
                              f"{_show(result[f'tuned_x{ENSEMBLE}'])} | "
                              f"{result[f'ratio_x{ENSEMBLE}']:.2f} | "
                              f"{verdict(result[f'ratio_x{ENSEMBLE}'])}", width=30)
        row("  choice", ("kept the default" if result["choice"]["kept_default"] else
                         result["choice"]["configuration"])
            + f"  [{result['seconds']:.0f} s]", width=30)
    summary = {"data_sets": len(results), "seconds": sum(r["seconds"] for r in results),
               "seconds_this_run": time.perf_counter() - started,
               "trials": TRIALS, "ensemble": ENSEMBLE, "results": results}
    for suffix, label in (("", "one network"), (f"_x{ENSEMBLE}", f"{ENSEMBLE} seeds")):
        ratios = [result[f"ratio{suffix}"] for result in results]
        tally = {kind: sum(verdict(r) == kind for r in ratios) for kind in ("win", "tie", "loss")}
        summary[f"geometric_mean{suffix}"] = geometric_mean(ratios)
        summary[f"worst{suffix}"] = max(ratios)
        summary[f"tally{suffix}"] = tally
        row(f"tuned/default, {label}",
            f"geometric mean {geometric_mean(ratios):.3f}, worst {max(ratios):.2f}; "
            f"{tally['win']} wins, {tally['tie']} ties, {tally['loss']} losses", width=30)
    ensemble_gain = [r[f"default_x{ENSEMBLE}"]["test_mse"] / r["default"]["test_mse"]
                     for r in results]
    summary["ensemble_over_single_default"] = geometric_mean(ensemble_gain)
    row(f"default x{ENSEMBLE} / default x1", f"geometric mean {geometric_mean(ensemble_gain):.3f}",
        width=30)
    row("whole benchmark", f"{summary['seconds']:.0f} s, the data sets' times summed "
                           f"({summary['seconds_this_run']:.0f} s in this run)", width=30)
    return summary
