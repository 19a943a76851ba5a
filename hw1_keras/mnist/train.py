"""`python run.py mnist`: train, evaluate, plot and export, resumably, in one run folder."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hw1_keras import devices, plots, replicas, runs
from hw1_keras.backup import BestCheckpoint, ResumingBackup, WorkerBackupAndRestore, read_log
from hw1_keras.config import to_dict
from hw1_keras.export import ONNX_CHECK_IMAGES, export_onnx, export_saved_model, onnx_difference
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist import pipeline
from hw1_keras.mnist import plots as mnist_plots
from hw1_keras.mnist.config import MnistConfig, flag_presets
from hw1_keras.mnist.model import MnistHyperModel, hyperparameters, serving_function
from hw1_keras.onnx_serving import MNIST
from hw1_keras.rerun import changes_from_saved, check_run_dir
from hw1_keras.runs import make_run_dir, read_json, write_json
from hw1_keras.training import (CHANCE_LOSS_10, Diverged, EpochTimer, ValidateAveragedWeights,
                                divergence_callbacks, seed_everything)

LOG = "training_log.csv"
BEST = "best.weights.h5"
BACKUP = "backup"
ACTIVATION_DIGIT = 9  # The report's fig. 10b shows a 9.
# Training images on which BatchNorm's statistics are re-estimated for the
# weight average (`--ema-momentum`): 40 batches, about a second per epoch.
SETTLE_IMAGES = 5_120
SETTLE_SEED_OFFSET = 10  # The training augmentation's layers use seed .. seed + 4.


def settle_batches(config: MnistConfig, images: np.ndarray, count: int = SETTLE_IMAGES,
                   batch_size: int = 128) -> list[np.ndarray]:
    """Fixed batches like `config`'s training ones, for re-estimating BatchNorm.

    The first `count` training images in batches of `batch_size`, half of them
    augmented once as in `config` when it trains on an augmented copy (with a
    seed of their own, so the training stream is left as it is).
    """
    augment = (pipeline.augmentation(config.rotation, config.translation, config.shear,
                                     config.seed + SETTLE_SEED_OFFSET, config.zoom, config.elastic)
               if config.augmented_copy else None)
    return pipeline.fixed_batches(images[:count], batch_size, augment)


def _callbacks(run_dir: Path, resumed_log: dict, settle_batches: list[np.ndarray] | None,
               chief_dir: Path | None = None) -> list[keras.callbacks.Callback]:
    """The run's callbacks, writing into `run_dir`.

    `settle_batches`: training batches for BatchNorm under the weight average
    (`--ema-momentum`, see `settle_batches`); None when the run keeps no average.

    `chief_dir`: on a multi-worker run's other workers, the chief's run folder;
    they write into a scratch `run_dir` but resume from the chief's backup
    (they must save when the chief does, see `WorkerBackupAndRestore`).
    """
    # Order matters: the log row and the best checkpoint are written before the
    # backup, so a kill between them repeats an epoch (read_log keeps the later
    # row) instead of losing one. The weight average goes between the
    # checkpoint and the backup (see `ValidateAveragedWeights`).
    average = [] if settle_batches is None else [ValidateAveragedWeights(settle_batches)]
    return [
        EpochTimer(),  # First: adds epoch_seconds for the CSV log.
        keras.callbacks.CSVLogger(str(run_dir / LOG), append=True),
        BestCheckpoint(run_dir / BEST, "val_accuracy", resume=bool(resumed_log)),
        *average,
        # Two alternating copies: a kill -9 in the middle of writing one leaves
        # the other whole to resume from (`ResumingBackup`: its weights or its
        # metadata). Kept after training, until the run's results are written:
        # a run stopped while evaluating or exporting then resumes with every
        # epoch done instead of training again.
        ResumingBackup(str(run_dir / BACKUP), double_checkpoint=True, delete_checkpoint=False)
        if chief_dir is None
        else WorkerBackupAndRestore(str(chief_dir / BACKUP), str(run_dir / BACKUP)),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
    ]


def _diverged(run_dir: Path, error: Diverged, fresh: bool) -> Diverged:
    """`error`, after taking a fresh run's files out of `run_dir` if no epoch was kept.

    Such a folder holds nothing but this run's settings, which would refuse
    the same command with a lower --lr; a run with epochs kept stays, to be
    resumed with its own flags.
    """
    if fresh and not (run_dir / BEST).exists():
        for name in ("config.json", LOG, "tensorboard", BACKUP):
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        runs.discard_empty_run_dirs()
        return error
    return Diverged(f"{error}; {run_dir} keeps the epochs before it, so pass another --out "
                    "for the new rate")


def _finished(run_dir: Path, config: MnistConfig) -> dict | None:
    """The metrics of a run of `config` that `run_dir` holds finished; else None."""
    metrics = run_dir / "metrics.json"
    if (run_dir / BACKUP).exists() or not metrics.is_file():
        return None
    return read_json(metrics) if changes_from_saved(run_dir, to_dict(config)) == "" else None


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Test loss, accuracy, per-class accuracy, confusion matrix, predictions."""
    loss, accuracy = model.evaluate(pipeline.evaluation_dataset(images, labels), verbose=0)
    probabilities = tf.nn.softmax(model.predict(images[..., np.newaxis].astype("float32"),
                                                batch_size=512, verbose=0)).numpy()
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return {
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
        "per_class_accuracy": {str(c): float(matrix[c, c] / max(1, matrix[c].sum()))
                               for c in range(10)},
        "confusion": matrix,
        "predicted": predicted,
        "confidence": probabilities.max(axis=1),
    }


def run(config: MnistConfig, out: str | None = None,
        device: devices.DeviceConfig | None = None) -> dict:
    """Trains, evaluates, plots and exports one MNIST run; resumes an interrupted one.

    Rerunning with the same `out` after an interruption (Ctrl-C, `kill -9`)
    continues from the last finished epoch: `BackupAndRestore` restores the
    weights, the optimizer and the epoch counter.

    Args:
        config: The run's configuration.
        out: The run folder (default: a new one under `runs/`).
        device: Hardware settings (default: `DeviceConfig()`, which picks).

    Returns:
        The metrics written to `metrics.json`, with `run_dir` added (for a
        multi-worker run's other workers, which write nothing: `{}`).
    """
    started = time.perf_counter()
    runtime = devices.setup(device or devices.DeviceConfig(), "mnist")
    devices.check_batch(config.batch_size, runtime.policy)
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    if not runtime.is_chief:
        # Every worker trains; only the chief keeps results. The others write
        # their logs into scratch and resume from the chief's backup.
        scratch = Path(tempfile.mkdtemp(prefix="hw1-worker-"))
        try:
            train_and_export(config, scratch, data, started=started, runtime=runtime,
                             chief_dir=Path(out) if out else None)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {}
    run_dir = make_run_dir(out, "mnist")
    check_run_dir(run_dir, to_dict(config), interrupted=(run_dir / BACKUP).exists(),
                  presets=flag_presets())
    return train_and_export(config, run_dir, data, started=started, runtime=runtime)


def train_and_export(config: MnistConfig, run_dir: Path, data: mnist_data.Mnist, *,
                     started: float, extra: dict | None = None,
                     runtime: devices.Runtime | None = None,
                     chief_dir: Path | None = None) -> dict:
    """Trains `config` on `data`, then evaluates, plots and exports into `run_dir`.

    The one path to a finished run, for a plain run and for the best setting
    of `mnist --tune` alike; an interrupted one resumes (see `run`).

    Args:
        config: The configuration to train.
        run_dir: The run folder (created).
        data: The loaded splits (`hw1_keras.mnist.data.load`).
        started: `time.perf_counter()` at the start of the run, for
            `total_seconds`.
        extra: More entries for `metrics.json` (e.g. a search's summary).
        runtime: Where to train (default: here, on one device).
        chief_dir: Set on a multi-worker run's other workers: they train,
            then stop without evaluating or writing anything else.

    Returns:
        The metrics written to `metrics.json`, with `run_dir` added.
    """
    finished = _finished(run_dir, config)
    if finished is not None:
        # The same command again: 20 minutes of training would only repeat the
        # seeded result, and stopping that rerun would leave its checkpoint and
        # log in place of the finished run's.
        if extra:  # A search's summary, perhaps of more trials than before.
            finished.update(extra)
            write_json(run_dir / "metrics.json", finished)
        print(f"{run_dir}: this run finished already (test accuracy "
              f"{finished['test_accuracy']:.4%}); its results are kept. Pass another --out "
              "to train it again.")
        return {**finished, "run_dir": str(run_dir)}
    resumed_log = read_log(run_dir / LOG, repair=True) if (run_dir / BACKUP).exists() else {}
    if resumed_log:  # The best setting of a search, resumed in the search's folder.
        check_run_dir(run_dir, to_dict(config), interrupted=True, search=True)
    if not resumed_log and (run_dir / LOG).exists():
        (run_dir / LOG).unlink()  # A finished earlier run: start its log afresh.
    print(f"mnist: {len(data.x_train)} train / {len(data.x_val)} validation / "
          f"{len(data.x_test)} test images -> {run_dir}"
          + (f" (resuming after epoch {len(resumed_log['epoch'])})" if resumed_log else ""))
    write_json(run_dir / "config.json", to_dict(config))

    seed_everything(config.seed)
    hypermodel = MnistHyperModel.from_config(
        config, jit_compile=runtime.policy.jit if runtime is not None else "auto")
    hp = hyperparameters(config)
    with runtime.strategy.scope() if runtime is not None else contextlib.nullcontext():
        model = hypermodel.build(hp)
        try:
            hypermodel.fit(
                hp, model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                callbacks=divergence_callbacks(config, start=CHANCE_LOSS_10) + _callbacks(
                    run_dir, resumed_log,
                    settle_batches(config, data.x_train) if config.ema_momentum else None,
                    chief_dir),
                # A live bar on a terminal; one line per epoch in logs and CI.
                verbose=1 if sys.stdout.isatty() else 2)
        except Diverged as error:
            raise _diverged(run_dir, error, fresh=not resumed_log) from None
    if runtime is not None:
        model = replicas.trained_copy(model, lambda: hypermodel.build(hp), runtime)
        if not runtime.is_chief:
            return {}
    model.load_weights(run_dir / BEST)  # Model selection on validation, never on test.

    log = read_log(run_dir / LOG)
    # Summed per epoch, so a resumed run counts the epochs before its interruption.
    train_seconds = float(sum(log["epoch_seconds"])) if "epoch_seconds" in log else None
    results = evaluate(model, data.x_test, data.y_test)
    epochs = [int(e) + 1 for e in log["epoch"]]
    best = BestCheckpoint(run_dir / BEST, "val_accuracy", resume=True).saved()
    best_epoch = best["epoch"]
    train_label = "train (augmented)" if config.augmented_copy else "train"
    plots.learning_curves(
        epochs, {train_label: log["accuracy"], "validation": log["val_accuracy"]},
        run_dir / "accuracy.png", ylabel="accuracy", title="MNIST accuracy per epoch")
    mnist_plots.filters(model, run_dir / "filters.png")
    # The first test 9, or the first test image of a data file that has none.
    nines = np.flatnonzero(data.y_test == ACTIVATION_DIGIT)
    mnist_plots.activations(model, data.x_test[nines[0] if len(nines) else 0],
                            run_dir / "activations.png")
    mnist_plots.confusion(results["confusion"], run_dir / "confusion.png")
    mnist_plots.mistakes(data.x_test, data.y_test, results["predicted"], results["confidence"],
                         run_dir / "mistakes.png")
    serve = serving_function(model)
    export_saved_model(model, run_dir / "saved_model", serve=serve)
    export_onnx(model, run_dir / "model.onnx", serve, MNIST)  # The same program, for onnxruntime.
    onnx_images = data.x_test[:ONNX_CHECK_IMAGES]

    metrics = {
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "per_class_accuracy": results["per_class_accuracy"],
        "confusion_matrix": results["confusion"].tolist(),
        "best_epoch": best_epoch,
        "best_val_accuracy": best["val_accuracy"],
        "epochs": len(epochs),
        "parameters": model.count_params(),
        "train_seconds": train_seconds,
        "resumed": bool(resumed_log),
        # Probabilities, ONNX vs SavedModel, on the same uint8 test digits.
        "onnx_max_abs_diff": onnx_difference(run_dir / "model.onnx", run_dir / "saved_model",
                                             onnx_images),
        "onnx_check_images": len(onnx_images),
        "seed": config.seed,
        "config": to_dict(config),
        **({"device": runtime.record()} if runtime is not None else {}),
        **(extra or {}),
        "total_seconds": time.perf_counter() - started,
    }
    write_json(run_dir / "metrics.json", metrics)
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)  # Finished: nothing to resume.
    print(f"test accuracy {metrics['test_accuracy']:.4%}  test loss {metrics['test_loss']:.4f}  "
          f"(best validation epoch {best_epoch}/{len(epochs)}, "
          f"{metrics['parameters']:,} parameters, trained in {train_seconds or 0:.0f}s)")
    print(f"results in {run_dir}/")
    return {**metrics, "run_dir": str(run_dir)}
