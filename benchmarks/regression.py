"""`python run.py bench regression`: the figures BENCHMARKS.md records.

Speed is always a ratio against a baseline measured in the same process, since
these machines are noisy: the default multi-step XLA loop against a plain
`model.fit` at one step per execution, both on the default 100,000-step recipe.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks.common import row, run_py
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import build_model, hyperparameters
from hw1_keras.regression.train import evaluate, noise_floor, train_model
from hw1_keras.training import seed_everything

PLAIN_STEPS_PER_KERAS_EPOCH = 1000
ACCURACY_KEYS = ("train_mse", "test_mse", "test_mse_gaps", "test_mse_outside")
ENSEMBLE = 5  # The --ensemble whose training time is compared with one network's.


def _plain_fit_seconds(config: RegressionConfig, train) -> float:
    """The same recipe through plain `model.fit`: one step per execution.

    The baseline gets the usual tf.data pipeline (reshuffled every epoch,
    repeated) with 1,000-step Keras epochs, so that it pays per-step overhead
    only: 50,000 one-epoch `fit` epochs would add per-epoch overhead too and
    make the comparison unfair to it.
    """
    seed_everything(config.seed)
    model = build_model(hyperparameters(config))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    dataset = (
        tf.data.Dataset.from_tensor_slices((train.x, train.y))
        .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    block = math.gcd(total_steps, PLAIN_STEPS_PER_KERAS_EPOCH)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=block, epochs=total_steps // block, verbose=0)
    return time.perf_counter() - start


def _end_to_end_seconds() -> float:
    """`python run.py regression` in a fresh process: import, train, plot, export."""
    with tempfile.TemporaryDirectory() as folder:
        return run_py(["regression", "--out", folder], stdout=subprocess.DEVNULL)


def regression(seeds: int, skip_plain: bool) -> dict:
    """Speed, accuracy over `seeds` seeds, and reproducibility of the default recipe."""
    config = RegressionConfig()
    train, test = regression_data.generate(config.data_seed)
    gaps = regression_data.GAPS
    results: dict = {"config": dataclasses.asdict(config)}

    print("speed (default recipe: 50,000 epochs = 100,000 Adam steps at batch 50)")
    runs = []
    for seed in range(seeds):
        model, _, seconds = train_model(dataclasses.replace(config, seed=seed), train, test,
                                        verbose=False)
        runs.append({"seed": seed, "seconds": seconds, **evaluate(model, train, test, gaps)})
    fast = runs[0]["seconds"]
    row("multi-step XLA loop (default), seed 0", f"{fast:.2f} s")
    results["fast_seconds"] = fast
    model, _, seconds = train_model(config, train, test, verbose=False, jit_compile=False)
    row("multi-step loop without XLA", f"{seconds:.2f} s  ({seconds / fast:.1f}x the default)")
    results["no_xla_seconds"] = seconds
    if not skip_plain:
        plain = _plain_fit_seconds(config, train)
        row("plain model.fit, 1 step per execution", f"{plain:.2f} s")
        row("speed-up of the default over plain fit", f"{plain / fast:.1f}x")
        results.update(plain_fit_seconds=plain, speedup=plain / fast)
    ensemble_model, _, ensemble_seconds = train_model(
        dataclasses.replace(config, ensemble=ENSEMBLE), train, test, verbose=False)
    ensemble_mse = evaluate(ensemble_model, train, test, gaps)["test_mse"]
    row(f"--ensemble {ENSEMBLE} (side by side), seed 0",
        f"{ensemble_seconds:.2f} s  ({ensemble_seconds / fast:.2f}x one network); "
        f"test MSE {ensemble_mse:.4f} against {runs[0]['test_mse']:.4f}")
    results.update(ensemble_seconds=ensemble_seconds, ensemble_test_mse=ensemble_mse)
    end_to_end = _end_to_end_seconds()
    row("python run.py regression, end to end", f"{end_to_end:.1f} s")
    results["end_to_end_seconds"] = end_to_end

    print(f"accuracy over seeds 0..{seeds - 1} (mean +- std)")
    for key in ACCURACY_KEYS:
        values = np.array([run[key] for run in runs])
        row(key, f"{values.mean():.4f} +- {values.std():.4f}   "
                  f"[{', '.join(f'{v:.4f}' for v in values)}]")
        results[key] = {"mean": values.mean(), "std": values.std(), "values": values.tolist()}
    floor = noise_floor(test)
    row("noise floor: test noise variance (sd 0.1)", f"{floor['test_noise_variance']:.4f}")
    row("noise floor: realized on these 100 points", f"{floor['test_noise_mse_realized']:.4f}")
    results.update(floor)

    print("reproducibility (seed 0 trained again)")
    again, _, _ = train_model(config, train, test, verbose=False)
    difference = abs(evaluate(again, train, test, gaps)["test_mse"] - runs[0]["test_mse"])
    row("|test MSE run 1 - run 2|", f"{difference:.2e}")
    results["reproducibility_abs_diff"] = difference
    return results


def main(args) -> dict:
    """Runs the regression benchmark with the command line's options."""
    return regression(args.seeds or 3, args.skip_plain)
