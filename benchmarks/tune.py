"""`python run.py bench tune`: the figures of BENCHMARKS.md's "Tuning" section.

* Speed: one 5-fold cross-validation of the default configuration at the
  homework's budget, folds side by side (`fit_folds`) against the same folds
  one after another (`fit`) in the same process; then the whole
  `python run.py regression --tune` in a fresh process.
* Quality: the tuned configuration (the winner of that search) and the default
  one, each trained on all the training data with seeds 0..n-1, judged on the
  test set: all points, inside the dark intervals, outside.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from hw1_keras import devices
from benchmarks.common import row, run_py
from hw1_keras.errors import InputError
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import RegressionHyperModel, build_model, hyperparameters
from hw1_keras.regression.train import evaluate, train_model
from tuning.folds import cv_folds
from tuning.regression_space import config_from_values, describe
from tuning.settings import DEFAULT_FOLDS

QUALITY_KEYS = ("test_mse", "test_mse_gaps", "test_mse_outside", "train_mse")


def cross_validation_seconds(config: RegressionConfig, train, *, side_by_side: bool,
                             cv: str) -> tuple:
    """One k-fold CV of `config` as the grid search runs it: `(seconds, mean, fold bests)`.

    `cv`: how the folds are made, as `--cv` says.
    """
    hp = hyperparameters(config)
    hypermodel = RegressionHyperModel(epochs=config.epochs, log_every=config.log_every,
                                      seed=config.seed, jit_compile="auto")
    folds = cv_folds(cv, train.x, DEFAULT_FOLDS, config.seed)
    start = time.perf_counter()
    devices.clear_session()
    models = []
    for fold in range(len(folds)):
        keras.utils.set_random_seed(config.seed + fold)
        models.append(build_model(hp))
    if side_by_side:
        histories = hypermodel.fit_folds(hp, models, train.x, train.y, folds)
    else:
        histories = [hypermodel.fit(hp, model, train.x[t], train.y[t],
                                    validation_data=(train.x[v], train.y[v])).history
                     for model, (t, v) in zip(models, folds)]
    seconds = time.perf_counter() - start
    bests = [float(np.min(history["val_mse"])) for history in histories]
    return seconds, float(np.mean(bests)), bests


def tune_end_to_end(out: Path, cv: str) -> float:
    """`python run.py regression --tune --cv CV --out OUT` in a fresh process; its seconds.

    Raises:
        InputError: the run failed.
    """
    return run_py(["regression", "--tune", "--cv", cv, "--out", str(out)],
                  stdout=subprocess.DEVNULL)


def quality(config: RegressionConfig, seeds: int, train, test) -> dict:
    """`evaluate` of `config` trained with seeds 0..seeds-1: key -> values."""
    runs = []
    for seed in range(seeds):
        model, _, _ = train_model(dataclasses.replace(config, seed=seed), train, test,
                                  verbose=False)
        runs.append(evaluate(model, train, test, regression_data.GAPS))
    return {key: [run[key] for run in runs] for key in QUALITY_KEYS}


def main(args) -> dict:
    """Runs the tuning benchmark with the command line's options."""
    seeds = args.seeds or 3
    if args.out and Path(args.out).is_dir() and any(Path(args.out).iterdir()):
        # A search there would resume, and its time would not be a whole search's.
        raise InputError(f"--out {args.out}: not empty; bench tune times a whole search, "
                         "which needs a new folder")
    config = RegressionConfig()
    train, test = regression_data.generate(config.data_seed)
    results: dict = {}

    print(f"speed (one {DEFAULT_FOLDS}-fold CV of the default configuration, {args.cv} folds "
          f"as the search's: {config.epochs} epochs at batch {config.batch_size} on each "
          f"fold's {len(train) - len(train) // DEFAULT_FOLDS} training points)")
    fast, cv_mean, cv_folds = cross_validation_seconds(config, train, side_by_side=True,
                                                       cv=args.cv)
    row("folds side by side (fit_folds, the search's path)", f"{fast:.1f} s")
    slow, slow_mean, _ = cross_validation_seconds(config, train, side_by_side=False,
                                                  cv=args.cv)
    row("folds one after another (fit)", f"{slow:.1f} s  ({slow / fast:.1f}x side by side)")
    row("default's CV val_mse, side by side / one by one",
        f"{cv_mean:.4f} / {slow_mean:.4f}  (folds {', '.join(f'{v:.3f}' for v in cv_folds)})")
    results.update(cv_seconds=fast, cv_sequential_seconds=slow, default_cv_val_mse=cv_mean,
                   default_cv_val_mse_sequential=slow_mean)

    with tempfile.TemporaryDirectory() as folder:
        out = Path(args.out) if args.out else Path(folder) / "tune"
        seconds = tune_end_to_end(out, args.cv)
        summary = json.loads((out / "tuning.json").read_text())
    winner = summary["winner"]
    row(f"python run.py regression --tune --cv {args.cv}, end to end", f"{seconds:.0f} s")
    for stage in summary["stages"]:
        done = [t for t in stage["trials"] if "seconds" in t]
        row(f"  {stage['name']}: {len(stage['trials'])} trials x {stage['folds']} folds "
            f"x {stage['epochs']} epochs",
            f"{sum(t['seconds'] for t in done):.0f} s in trials "
            f"({len(stage['trials']) - len(done)} failed)")
    row("winner", describe(winner["hyperparameters"]))
    row("winner's CV val_mse (mean +- std over folds)",
        f"{winner['mean']:.4f} +- {winner['std']:.4f}")
    results.update(tune_seconds=seconds, winner=winner, stages=[
        {key: stage[key] for key in ("name", "folds", "epochs")} | {
            "trials": len(stage["trials"]),
            "trial_seconds": sum(t.get("seconds", 0.0) for t in stage["trials"])}
        for stage in summary["stages"]])

    tuned = config_from_values(config, winner["hyperparameters"])
    print(f"test error, trained on all {len(train)} points, seeds 0..{seeds - 1} "
          "(mean +- std)   default | tuned")
    default_runs = quality(config, seeds, train, test)
    tuned_runs = quality(tuned, seeds, train, test)
    for key in QUALITY_KEYS:
        a, b = np.array(default_runs[key]), np.array(tuned_runs[key])
        row(key, f"{a.mean():.4f} +- {a.std():.4f} | {b.mean():.4f} +- {b.std():.4f}  "
                 f"({(b.mean() / a.mean() - 1) * 100:+.0f}%)")
        results[key] = {"default": a.tolist(), "tuned": b.tolist()}
    return results
