"""`python run.py bench mnist`: throughput, precision, accuracy, the quick run, resume.

Each part prints its figures and returns them; `--parts` picks which run.
Full-length parts take long on 2 CPU cores (the accuracy part is one default
run, about 25 minutes, per seed), so they are opt-in and resumable: each run
lives in its own folder under `--out`, and an interrupted part reruns from
where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist import pipeline
from hw1_keras.config import config_from_args, to_dict
from hw1_keras.mnist.config import MnistConfig, quick_preset
from hw1_keras.mnist.model import build_model, hyperparameters
from hw1_keras.mnist.train import LOG, read_log
from hw1_keras.errors import InputError
from hw1_keras.runs import check_run_dir, make_run_dir, read_json
from hw1_keras.training import seed_everything

REPO_ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_STEPS = 120  # Batches timed per pipeline, after a warm-up.
# Timings per pipeline, alternating; the best of each counts. The machine's
# speed drifts by tens of percent within a minute, and one pair is not enough.
THROUGHPUT_ROUNDS = 4


def _row(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


def _augmentation(config: MnistConfig):
    return pipeline.augmentation(config.rotation, config.translation, config.shear,
                                 config.seed, config.zoom, config.elastic)


def _images_per_second(model: keras.Model, dataset, batch_size: int) -> float:
    """Trains `model` on `THROUGHPUT_STEPS` batches of `dataset`; its images/s."""
    start = time.perf_counter()
    model.fit(dataset.take(THROUGHPUT_STEPS), epochs=1, verbose=0)
    return THROUGHPUT_STEPS * batch_size / (time.perf_counter() - start)


def throughput(config: MnistConfig) -> dict:
    """Training images/s of the default model, augmentation on versus off."""
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    seed_everything(config.seed)
    model = build_model(hyperparameters(config))
    augment = _augmentation(config)
    results = {}
    print(f"throughput (batch {config.batch_size}, best of {THROUGHPUT_ROUNDS} x "
          f"{THROUGHPUT_STEPS} steps each, alternating, same model)")
    # Alternate so that drift in the machine's speed hits both alike.
    for name in ("plain", "augmented") * THROUGHPUT_ROUNDS:
        dataset = pipeline.training_dataset(
            data.x_train, data.y_train, batch_size=config.batch_size, seed=config.seed,
            augment=augment if name == "augmented" else None)
        model.fit(dataset.take(10), epochs=1, verbose=0)  # Warm-up: tracing, buffers.
        results.setdefault(name, []).append(
            _images_per_second(model, dataset, config.batch_size))
    plain, augmented = max(results["plain"]), max(results["augmented"])
    _row("images/s, augmentation off", f"{plain:.0f}")
    _row("images/s, augmentation on", f"{augmented:.0f}")
    _row("augmented / plain", f"{augmented / plain:.1%}")
    return {"images_per_second_plain": plain, "images_per_second_augmented": augmented,
            "augmented_over_plain": augmented / plain}


def precision(config: MnistConfig) -> dict:
    """Training images/s of the default model and pipeline, float32 versus mixed_bfloat16.

    The two models see the same augmented batches in alternation, so drift in
    the machine's speed hits both alike. Where the CPU has no bfloat16
    arithmetic, expect bfloat16 to be slower, not faster.
    """
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    dataset = pipeline.training_dataset(data.x_train, data.y_train, batch_size=config.batch_size,
                                        seed=config.seed, augment=_augmentation(config))
    models = {}
    previous = keras.mixed_precision.global_policy()
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            seed_everything(config.seed)
            models[policy] = build_model(hyperparameters(config))
        finally:
            keras.mixed_precision.set_global_policy(previous)
        models[policy].fit(dataset.take(10), epochs=1, verbose=0)  # Warm-up: tracing, buffers.
    print(f"precision (batch {config.batch_size}, {THROUGHPUT_STEPS} steps each, augmented "
          "pipeline, same architecture)")
    rates = {policy: [] for policy in models}
    for policy in [*models, *models]:  # Alternating, as in `throughput`.
        rates[policy].append(_images_per_second(models[policy], dataset, config.batch_size))
    full, half = max(rates["float32"]), max(rates["mixed_bfloat16"])
    _row("images/s, float32", f"{full:.0f}")
    _row("images/s, mixed_bfloat16", f"{half:.0f}")
    _row("bfloat16 / float32", f"{half / full:.2f}x")
    return {"images_per_second_float32": full, "images_per_second_bfloat16": half,
            "bfloat16_over_float32": half / full}


def _run_cli(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "run.py"), "mnist", *args],
                            **popen)


def _timed_run(args: list[str]) -> tuple[dict, float]:
    """A whole `run.py mnist` in a fresh process; its metrics and wall seconds.

    A run an earlier (interrupted) benchmark finished in the same folder is
    reused, only if it was made with the same settings.

    Raises:
        InputError: The folder holds a run with other settings (e.g. an earlier
            benchmark's with another `--resume-epochs` or `--data`).
    """
    out = args[args.index("--out") + 1]
    check_run_dir(Path(out), to_dict(_resolved_config(args)))
    metrics_file = Path(out) / "metrics.json"
    if metrics_file.is_file():  # Finished by an earlier (interrupted) benchmark.
        metrics = read_json(metrics_file)
        return metrics, metrics["total_seconds"]
    start = time.perf_counter()
    if _run_cli(args).wait() != 0:
        raise RuntimeError(f"run.py mnist {' '.join(args)} failed")
    return read_json(metrics_file), time.perf_counter() - start


def _resolved_config(args: list[str]) -> MnistConfig:
    """The configuration `run.py mnist ARGS` resolves to."""
    from hw1_keras.cli import build_parser

    parsed = build_parser().parse_args(["mnist", *args])
    return config_from_args(MnistConfig, parsed, quick_preset() if parsed.quick else None)


def quick(config: MnistConfig, out: Path) -> dict:
    """`run.py mnist --quick`: test accuracy and wall-clock time."""
    print("quick run (run.py mnist --quick)")
    metrics, seconds = _timed_run(["--quick", "--data", config.data, "--out",
                                   str(out / "quick")])
    _row("test accuracy", f"{metrics['test_accuracy']:.2%}")
    _row("wall-clock seconds, whole command", f"{seconds:.0f}")
    return {"quick_test_accuracy": metrics["test_accuracy"], "quick_seconds": seconds}


def accuracy(config: MnistConfig, out: Path, seeds: int) -> dict:
    """Default runs over `seeds` seeds: test accuracy mean and std, wall time."""
    print(f"default runs over seeds 0..{seeds - 1}")
    accuracies, times = [], []
    for seed in range(seeds):
        metrics, seconds = _timed_run(["--data", config.data, "--seed", str(seed),
                                       "--out", str(out / f"seed{seed}")])
        accuracies.append(metrics["test_accuracy"])
        times.append(seconds)
        _row(f"seed {seed}: test accuracy, wall seconds",
             f"{metrics['test_accuracy']:.2%}, {seconds:.0f}")
    values = np.array(accuracies)
    _row("test accuracy mean +- std", f"{values.mean():.2%} +- {values.std():.2%}")
    return {"test_accuracy": accuracies, "test_accuracy_mean": values.mean(),
            "test_accuracy_std": values.std(), "seconds": times}


def resume(config: MnistConfig, out: Path, epochs: int, kill_after: int) -> dict:
    """Kill -9 a run after `kill_after` finished epochs, rerun it, compare.

    The reference is the same command run without interruption.
    """
    print(f"resume ({epochs} epochs, kill -9 after epoch {kill_after}, then rerun)")
    # Originals only (half-length epochs): the point is the resume, not accuracy.
    common = ["--data", config.data, "--epochs", str(epochs), "--augmented-copy", "0"]
    reference, _ = _timed_run([*common, "--out", str(out / "resume-reference")])
    folder = out / "resume-killed"
    if not (folder / "metrics.json").is_file():
        process = _run_cli([*common, "--out", str(folder)], start_new_session=True,
                           stdout=subprocess.DEVNULL)
        while len(read_log(folder / LOG).get("epoch", [])) < kill_after:
            if process.poll() is not None:
                raise RuntimeError("the run ended before it could be killed")
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _row("killed after epochs", str(len(read_log(folder / LOG)["epoch"])))
    resumed, _ = _timed_run([*common, "--out", str(folder)])
    epochs_logged = [int(e) for e in read_log(folder / LOG)["epoch"]]
    _row("epochs in the log after resuming", f"{epochs_logged}")
    _row("test accuracy: killed + resumed", f"{resumed['test_accuracy']:.2%}")
    _row("test accuracy: uninterrupted", f"{reference['test_accuracy']:.2%}")
    return {"resumed_test_accuracy": resumed["test_accuracy"],
            "reference_test_accuracy": reference["test_accuracy"],
            "epochs_logged": epochs_logged, "resumed_flag": resumed["resumed"]}


def main(args) -> dict:
    """Runs the MNIST benchmark parts named by `--parts`."""
    if not args.data:
        raise InputError("bench mnist needs --data PATH.npz (the runs read it offline)")
    config = dataclasses.replace(MnistConfig(), data=args.data)
    mnist_data.load_arrays(config.data)  # Fail early, in one line, on a bad file.
    out = make_run_dir(args.out or "runs/bench-mnist", "bench-mnist")
    keras.config.disable_interactive_logging()
    results = {}
    for part in args.parts:
        if part == "throughput":
            results.update(throughput(config))
        elif part == "precision":
            results.update(precision(config))
        elif part == "quick":
            results.update(quick(config, out))
        elif part == "accuracy":
            results.update(accuracy(config, out, args.seeds or 2))
        elif part == "resume":
            results.update(resume(config, out, epochs=args.resume_epochs,
                                  kill_after=args.resume_epochs // 2))
    return results
