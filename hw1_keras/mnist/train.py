"""`python run.py mnist`: train, evaluate, plot and export, resumably, in one run folder."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hw1_keras import devices, plots, runs, task
from hw1_keras.backup import BestCheckpoint, read_log, run_backup
from hw1_keras.config import to_dict
from hw1_keras.export import ONNX_CHECK_IMAGES, export_onnx, export_saved_model, onnx_difference
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist import pipeline
from hw1_keras.mnist import plots as mnist_plots
from hw1_keras.mnist.config import MnistConfig, flag_presets
from hw1_keras.mnist.model import MnistHyperModel, hyperparameters, serving_function
from hw1_keras.onnx_serving import MNIST
from hw1_keras.rerun import check_run_dir
from hw1_keras.task import Trained
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
        run_backup(run_dir / BACKUP, chief_dir / BACKUP if chief_dir else None),
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


class MnistTask(task.Task):
    """MNIST's steps for `hw1_keras.task`: the homework's CNN, resumable, end to end."""

    name = "mnist"
    backup = BACKUP

    def load(self, config: MnistConfig) -> mnist_data.Mnist:
        return mnist_data.load(config.data, config.validation_size, config.seed)

    def check_run_dir(self, run_dir: Path, config: MnistConfig) -> None:
        check_run_dir(run_dir, to_dict(config), interrupted=(run_dir / BACKUP).exists(),
                      presets=flag_presets())

    def train(self, config, data, run_dir, *, runtime, chief_dir) -> Trained:
        resumed_log = read_log(run_dir / LOG, repair=True) if (run_dir / BACKUP).exists() else {}
        if not resumed_log and (run_dir / LOG).exists():
            (run_dir / LOG).unlink()  # A finished earlier run: start its log afresh.
        print(f"mnist: {len(data.x_train)} train / {len(data.x_val)} validation / "
              f"{len(data.x_test)} test images -> {run_dir}"
              + (f" (resuming after epoch {len(resumed_log['epoch'])})" if resumed_log else ""))

        seed_everything(config.seed)
        hypermodel = MnistHyperModel.from_config(
            config, jit_compile=runtime.policy.jit if runtime is not None else "auto")
        hp = hyperparameters(config)
        with runtime.strategy.scope() if runtime is not None else contextlib.nullcontext():
            model = hypermodel.build(hp)
            try:
                hypermodel.fit(
                    hp, model, data.x_train, data.y_train,
                    validation_data=(data.x_val, data.y_val),
                    callbacks=divergence_callbacks(config, start=CHANCE_LOSS_10) + _callbacks(
                        run_dir, resumed_log,
                        settle_batches(config, data.x_train) if config.ema_momentum else None,
                        chief_dir),
                    # A live bar on a terminal; one line per epoch in logs and CI.
                    verbose=1 if sys.stdout.isatty() else 2)
            except Diverged as error:
                raise _diverged(run_dir, error, fresh=not resumed_log) from None
        return Trained(model, lambda: hypermodel.build(hp), {"resumed": bool(resumed_log)})

    def results(self, config, model, data, trained, run_dir) -> dict:
        model.load_weights(run_dir / BEST)  # Model selection on validation, never on test.
        log = read_log(run_dir / LOG)
        results = evaluate(model, data.x_test, data.y_test)
        epochs = [int(e) + 1 for e in log["epoch"]]
        best = BestCheckpoint(run_dir / BEST, "val_accuracy", resume=True).saved()
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
        mnist_plots.mistakes(data.x_test, data.y_test, results["predicted"],
                             results["confidence"], run_dir / "mistakes.png")
        serve = serving_function(model)
        export_saved_model(model, run_dir / "saved_model", serve=serve)
        # The same program, for onnxruntime.
        export_onnx(model, run_dir / "model.onnx", serve, MNIST)
        onnx_images = data.x_test[:ONNX_CHECK_IMAGES]
        return {
            "test_accuracy": results["test_accuracy"],
            "test_loss": results["test_loss"],
            "per_class_accuracy": results["per_class_accuracy"],
            "confusion_matrix": results["confusion"].tolist(),
            "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"],
            "epochs": len(epochs),
            # Summed per epoch, so a resumed run counts the epochs before its interruption.
            "train_seconds": (float(sum(log["epoch_seconds"])) if "epoch_seconds" in log
                              else None),
            "resumed": trained.details["resumed"],
            # Probabilities, ONNX vs SavedModel, on the same uint8 test digits.
            "onnx_max_abs_diff": onnx_difference(run_dir / "model.onnx",
                                                 run_dir / "saved_model", onnx_images),
            "onnx_check_images": len(onnx_images),
        }

    def headline(self, metrics: dict) -> str:
        return f"test accuracy {metrics['test_accuracy']:.4%}"

    def summary(self, metrics: dict) -> str:
        return (f"test accuracy {metrics['test_accuracy']:.4%}  test loss "
                f"{metrics['test_loss']:.4f}  (best validation epoch {metrics['best_epoch']}/"
                f"{metrics['epochs']}, {metrics['parameters']:,} parameters, trained in "
                f"{metrics['train_seconds'] or 0:.0f}s)")


TASK = MnistTask()


def run(config: MnistConfig, out: str | None = None,
        device: devices.DeviceConfig | None = None) -> dict:
    """Trains, evaluates, plots and exports one MNIST run; resumes an interrupted one.

    Rerunning with the same `out` after an interruption (Ctrl-C, `kill -9`)
    continues from the last finished epoch: `BackupAndRestore` restores the
    weights, the optimizer and the epoch counter. See `hw1_keras.task.run`.
    """
    return task.run(TASK, config, out, device)
