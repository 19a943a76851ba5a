"""`python run.py bench mnist`: throughput, precision, accuracy, the quick run, resume.

Each part prints its figures and returns them; `--parts` picks which run.
Full-length parts take long on 2 CPU cores (the accuracy part is one default
run, about 25 minutes, per seed), so they are opt-in and resumable: each run
lives in its own folder under `--out`, and an interrupted part reruns from
where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import row, run_py, run_py_command
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist import pipeline
from hw1_keras.config import config_from_args, to_dict
from hw1_keras.mnist.config import MnistConfig, quick_preset
from hw1_keras.mnist.model import build_model, hyperparameters
from hw1_keras.backup import read_log
from hw1_keras.mnist.train import LOG
from hw1_keras.errors import InputError
from hw1_keras.rerun import check_run_dir
from hw1_keras.runs import make_run_dir, read_json
from hw1_keras.training import seed_everything

THROUGHPUT_STEPS = 120  # Batches timed per pipeline, after a warm-up.
# Timings per pipeline, alternating; the best of each counts. The machine's
# speed drifts by tens of percent within a minute, and one pair is not enough.
THROUGHPUT_ROUNDS = 4
COPIES = 2  # Each image's appearances per pass of the timed pipeline, as a default run's.


def _augmentation(config: MnistConfig):
    return pipeline.augmentation(config.rotation, config.translation, config.shear,
                                 config.seed, config.zoom, config.elastic)


def check_data(path: str, task: str) -> None:
    """Fails early, in one line, on a file benchmark `task` cannot use.

    Every part holds out the default validation set, as `run.py mnist` does;
    the split's own error would name `--validation-size`, which bench has not.

    Raises:
        InputError: The file is missing or malformed, or has too few training
            images.
    """
    (x_train, _), _ = mnist_data.load_arrays(path)
    held_out = MnistConfig().validation_size
    if len(x_train) <= held_out:
        raise InputError(f"--data {path}: holds {len(x_train):,} training images; bench {task} "
                         f"holds out {held_out:,} for validation, so it needs more than that: "
                         "pass the full MNIST file")


def training_dataset(config: MnistConfig, data: mnist_data.Mnist, augment):
    """The timed pipeline: a default run's, repeated; with its images per pass.

    Repeated, so that a small file, whose pass holds fewer batches than a
    part times, still yields them all (`images_per_second` counts them right).
    """
    dataset = pipeline.training_dataset(data.x_train, data.y_train,
                                        batch_size=config.batch_size, seed=config.seed,
                                        augment=augment, copies=COPIES)
    return dataset.repeat(), COPIES * len(data.x_train)


def images_per_second(model: keras.Model, dataset, *, steps: int, batch_size: int,
                      images_per_pass: int) -> float:
    """Trains `model` on `steps` batches of `dataset`; the images/s it trained on.

    Counts the images those batches hold, not `steps * batch_size`: each pass
    of `images_per_pass` images ends in a short batch unless `batch_size`
    divides it, which on a small file happens within the timed steps.

    Args:
        model: A compiled model.
        dataset: Batches of `batch_size`, passes of `images_per_pass` images,
            repeated.
        steps: Batches to time.
        batch_size: Images per batch (but a pass's last).
        images_per_pass: Images in one pass.
    """
    batches_per_pass = math.ceil(images_per_pass / batch_size)
    passes, rest = divmod(steps, batches_per_pass)
    images = passes * images_per_pass + rest * batch_size
    start = time.perf_counter()
    model.fit(dataset.take(steps), epochs=1, verbose=0, shuffle=False)  # The pipeline shuffles.
    return images / (time.perf_counter() - start)


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
        dataset, images = training_dataset(config, data,
                                           augment if name == "augmented" else None)
        model.fit(dataset.take(10), epochs=1, verbose=0, shuffle=False)  # Warm-up.
        results.setdefault(name, []).append(images_per_second(
            model, dataset, steps=THROUGHPUT_STEPS, batch_size=config.batch_size,
            images_per_pass=images))
    plain, augmented = max(results["plain"]), max(results["augmented"])
    row("images/s, augmentation off", f"{plain:.0f}")
    row("images/s, augmentation on", f"{augmented:.0f}")
    row("augmented / plain", f"{augmented / plain:.1%}")
    return {"images_per_second_plain": plain, "images_per_second_augmented": augmented,
            "augmented_over_plain": augmented / plain}


def precision(config: MnistConfig) -> dict:
    """Training images/s of the default model and pipeline, float32 versus mixed_bfloat16.

    The two models see the same augmented batches in alternation, so drift in
    the machine's speed hits both alike. Where the CPU has no bfloat16
    arithmetic, expect bfloat16 to be slower, not faster.
    """
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    dataset, images = training_dataset(config, data, _augmentation(config))
    models = {}
    previous = keras.mixed_precision.global_policy()
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            seed_everything(config.seed)
            models[policy] = build_model(hyperparameters(config))
        finally:
            keras.mixed_precision.set_global_policy(previous)
        models[policy].fit(dataset.take(10), epochs=1, verbose=0, shuffle=False)  # Warm-up.
    print(f"precision (batch {config.batch_size}, {THROUGHPUT_STEPS} steps each, augmented "
          "pipeline, same architecture)")
    rates = {policy: [] for policy in models}
    for policy in [*models, *models]:  # Alternating, as in `throughput`.
        rates[policy].append(images_per_second(
            models[policy], dataset, steps=THROUGHPUT_STEPS, batch_size=config.batch_size,
            images_per_pass=images))
    full, half = max(rates["float32"]), max(rates["mixed_bfloat16"])
    row("images/s, float32", f"{full:.0f}")
    row("images/s, mixed_bfloat16", f"{half:.0f}")
    row("bfloat16 / float32", f"{half / full:.2f}x")
    return {"images_per_second_float32": full, "images_per_second_bfloat16": half,
            "bfloat16_over_float32": half / full}


def _run_cli(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen(run_py_command(["mnist", *args]), **popen)


def _timed_run(args: list[str]) -> tuple[dict, float]:
    """A whole `run.py mnist` in a fresh process; its metrics and wall seconds.

    A run an earlier (interrupted) benchmark finished in the same folder is
    reused, only if it was made with the same settings.

    Raises:
        InputError: The folder holds a run with other settings (e.g. an earlier
            benchmark's with another `--resume-epochs` or `--data`), or the run
            failed (its one-line error, in ours).
    """
    out = args[args.index("--out") + 1]
    check_run_dir(Path(out), to_dict(_resolved_config(args)))
    metrics_file = Path(out) / "metrics.json"
    if metrics_file.is_file():  # Finished by an earlier (interrupted) benchmark.
        metrics = read_json(metrics_file)
        return metrics, metrics["total_seconds"]
    seconds = run_py(["mnist", *args])
    return read_json(metrics_file), seconds


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
    row("test accuracy", f"{metrics['test_accuracy']:.2%}")
    row("wall-clock seconds, whole command", f"{seconds:.0f}")
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
        row(f"seed {seed}: test accuracy, wall seconds",
            f"{metrics['test_accuracy']:.2%}, {seconds:.0f}")
    values = np.array(accuracies)
    row("test accuracy mean +- std", f"{values.mean():.2%} +- {values.std():.2%}")
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
        try:
            while len(read_log(folder / LOG).get("epoch", [])) < kill_after:
                if process.poll() is not None:
                    raise RuntimeError("the run ended before it could be killed")
                time.sleep(0.5)
        except BaseException:
            # The run has a session of its own, so Ctrl-C never reaches it: left
            # alone, it would train on unseen and write into its folder.
            if process.poll() is None:  # Not a pid the system may have reused.
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        row("killed after epochs", str(len(read_log(folder / LOG)["epoch"])))
    resumed, _ = _timed_run([*common, "--out", str(folder)])
    epochs_logged = [int(e) for e in read_log(folder / LOG)["epoch"]]
    row("epochs in the log after resuming", f"{epochs_logged}")
    row("test accuracy: killed + resumed", f"{resumed['test_accuracy']:.2%}")
    row("test accuracy: uninterrupted", f"{reference['test_accuracy']:.2%}")
    # Equal to the last digit when the resume continues the run exactly.
    row("test loss: killed + resumed / uninterrupted",
        f"{resumed['test_loss']:.7f} / {reference['test_loss']:.7f}")
    return {"resumed_test_accuracy": resumed["test_accuracy"],
            "reference_test_accuracy": reference["test_accuracy"],
            "resumed_test_loss": resumed["test_loss"],
            "reference_test_loss": reference["test_loss"],
            "epochs_logged": epochs_logged, "resumed_flag": resumed["resumed"]}


def main(args) -> dict:
    """Runs the MNIST benchmark parts named by `--parts`."""
    if not args.data:
        raise InputError("bench mnist needs --data PATH.npz (the runs read it offline)")
    if "resume" in args.parts and args.resume_epochs < 2:
        # Half the epochs, rounded down, finish before the kill; the rest after.
        raise InputError(f"--resume-epochs {args.resume_epochs}: the resume part needs at "
                         "least 2 epochs, one to finish before the kill and one after")
    config = dataclasses.replace(MnistConfig(), data=args.data)
    check_data(config.data, "mnist")  # Before any part runs, not minutes in.
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
