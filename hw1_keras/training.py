"""Training helpers every task shares: seeding and quiet progress lines."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import h5py
import keras

from hw1_keras import compat
from hw1_keras.errors import InputError
from hw1_keras.runs import write_json
from hw1_keras.text import plural

# The HDF5 attribute of a best checkpoint that says which epoch it holds.
NOTE_ATTRIBUTE = "hw1_keras_best"
# A training loss this many times its value at the start has diverged. Healthy
# runs only fall below their start (the default regression's first 500 epochs
# average 2.3 from about 3 at the start, its last 0.27); one whose rate is too
# high jumps many orders of magnitude at once (--lr 1e3: 2e8, --lr 1e10: 2e22),
# while a poor but sane one stays within a few times its start (--lr 1: 17).
DIVERGENCE_FACTOR = 100.0
# The cross-entropy of a uniform guess over 10 classes, label smoothing or not:
# where an untrained classifier starts.
CHANCE_LOSS_10 = math.log(10)


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and the backend so that a seeded run repeats exactly."""
    keras.utils.set_random_seed(seed)


class ProgressLine(keras.callbacks.Callback):
    """Prints one line every `interval` seconds (and at the end) instead of a bar.

    Long runs of tiny models have tens of thousands of epochs; a bar or a line
    per epoch would drown the terminal. The line shows the user-facing epoch
    count, every logged metric and the elapsed time.

    Args:
        total_epochs: The epochs the user asked for.
        epochs_per_keras_epoch: How many user epochs one Keras epoch spans
            (`MultiStepTrainer` runs a block of epochs per Keras epoch).
        interval: Seconds between lines.
        stream: Where to print (default: stdout).
    """

    def __init__(self, total_epochs: int, epochs_per_keras_epoch: int = 1,
                 interval: float = 2.0, stream=None):
        super().__init__()
        self.total_epochs = total_epochs
        self.epochs_per_keras_epoch = epochs_per_keras_epoch
        self.interval = interval
        self.stream = stream or sys.stdout

    def on_train_begin(self, logs=None):
        # A training split over two fits (see RegressionHyperModel._fit_replicated)
        # keeps counting its time from the first.
        if not hasattr(self, "start"):
            self.start = self.last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        done = min((epoch + 1) * self.epochs_per_keras_epoch, self.total_epochs)
        if now - self.last < self.interval and done < self.total_epochs:
            return
        self.last = now
        shown = "  ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items())
        width = len(str(self.total_epochs))
        print(f"epoch {done:>{width}}/{self.total_epochs}  {shown}  [{now - self.start:.1f}s]",
              file=self.stream, flush=True)


def divergence(loss: float, start: float | None) -> str | None:
    """Why a training whose latest loss is `loss` has diverged, or None (pure).

    Args:
        loss: The latest logged training loss (a mean over an epoch or block).
        start: The loss before training, when known and positive.

    Returns:
        "loss nan" (or inf), "loss L, over 100 times its start S" (past
        `DIVERGENCE_FACTOR` times it), or None.
    """
    if not math.isfinite(loss):
        return f"loss {loss}"
    if start is not None and 0 < start < math.inf and loss > DIVERGENCE_FACTOR * start:
        return f"loss {loss:.4g}, over {DIVERGENCE_FACTOR:g} times its start {start:.4g}"
    return None


def lower_rate(rate: float, default: float) -> float:
    """The `--lr` to suggest after training diverged at `rate` (pure): the
    task's default when `rate` is above it, else a tenth of `rate`."""
    return default if rate > default else rate / 10


def divergence_callbacks(config, *, start: float | None = None, data=None,
                         epochs_per_keras_epoch: int = 1) -> list[keras.callbacks.Callback]:
    """Keras' `TerminateOnNaN` (ends the epoch at the first NaN batch) and `StopOnDivergence`.

    Args:
        config: The run's configuration dataclass (its `learning_rate` and
            that field's default make the advice).
        start, data, epochs_per_keras_epoch: As `StopOnDivergence` takes them.
    """
    default = {f.name: f.default for f in dataclasses.fields(config)}["learning_rate"]
    return [keras.callbacks.TerminateOnNaN(),
            StopOnDivergence(config.learning_rate, lower_rate(config.learning_rate, default),
                             start=start, data=data,
                             epochs_per_keras_epoch=epochs_per_keras_epoch)]


class Diverged(InputError):
    """Training diverged: the loss became NaN or inf, or grew far above its start."""


class StopOnDivergence(keras.callbacks.Callback):
    """Ends a diverging training with one line: the loss and a lower `--lr` to try.

    At the end of each epoch, `divergence` judges the logged loss against the
    loss at the start; a diverged training raises `Diverged` (an `InputError`), so nothing of
    it is exported. Place it before the callbacks that record an epoch (log,
    checkpoint, backup), so the diverged epoch is not kept.

    Args:
        learning_rate: The run's `--lr`.
        lower: The `--lr` to suggest instead.
        start: The loss before training, when known without measuring (a
            classifier's chance level).
        data: Otherwise `(x, y)` to measure it on: the untrained model's
            loss there, at the start of training. For the regression, whose
            first logged loss is already a mean over hundreds of epochs.
        epochs_per_keras_epoch: How many epochs one Keras epoch spans, for
            the message (`MultiStepTrainer` runs a block per Keras epoch).
    """

    def __init__(self, learning_rate: float, lower: float, *, start: float | None = None,
                 data=None, epochs_per_keras_epoch: int = 1):
        super().__init__()
        self.learning_rate = learning_rate
        self.lower = lower
        self.start = start
        self.data = data
        self.epochs_per_keras_epoch = epochs_per_keras_epoch

    def on_train_begin(self, logs=None):
        # A training split over two fits (the mirrored regression) measures once.
        if self.start is None and self.data is not None:
            # One eager test step, as `evaluate` runs per batch: compiling
            # `evaluate` would cost seconds (XLA) for a few milliseconds of work.
            # The metrics it updates are reset as each epoch begins.
            self.start = float(self.model.test_step(self.data)["loss"])

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        reason = None if loss is None else divergence(float(loss), self.start)
        if reason is None:
            return
        self.model.stop_training = True
        epochs = (epoch + 1) * self.epochs_per_keras_epoch
        # Data the network does not rescale itself can make any rate diverge.
        data = ", and check that the data's values are not huge" if self.data else ""
        raise Diverged(
            f"training diverged ({reason}) with --lr {self.learning_rate:g}; try a smaller "
            f"one, e.g. --lr {self.lower:g}{data} (stopped after {plural(epochs, 'epoch')})")


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to each epoch's logs, so a CSV log keeps the timing.

    Place it before the callbacks that record logs. Summing the column gives a
    run's training time even across interruptions and resumes.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.started


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest `monitor`, safely across kills.

    Unlike `keras.callbacks.ModelCheckpoint`, which writes the file in place,
    the weights go to a scratch file that is renamed over the checkpoint, so a
    `kill -9` mid-save leaves the previous checkpoint whole. The file also
    says which epoch it holds (1-based `epoch` and the `monitor` value, an
    attribute of the HDF5 file that Keras' loader ignores), so weights and
    note land in one rename and cannot disagree. A resumed run starts from
    that value, so an epoch repeated after a kill competes with the weights
    actually on disk, not with a logged value whose weights may never have
    been saved. A copy of the note sits beside it (`<name>.json`) for people.

    Args:
        path: The checkpoint, a `.weights.h5` file.
        monitor: The logged metric to maximize, e.g. `val_accuracy`.
        resume: Compete with the checkpoint already on disk; otherwise the
            first epoch replaces it (a new run in an old run's folder).
    """

    def __init__(self, path: str | Path, monitor: str = "val_accuracy", resume: bool = False):
        super().__init__()
        self.path = Path(path)
        self.note_path = self.path.with_suffix(".json")  # best.weights.json
        self.monitor = monitor
        saved = self.saved() if resume else None
        self.best = saved[monitor] if saved else -math.inf

    def saved(self) -> dict | None:
        """The note of the checkpoint on disk (`epoch`, monitor value), or None."""
        if not self.path.is_file():
            return None
        with h5py.File(self.path, "r") as weights:
            note = weights.attrs.get(NOTE_ATTRIBUTE)
        return json.loads(note) if note is not None else None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value > self.best:
            return
        self.best = float(value)
        note = {"epoch": epoch + 1, self.monitor: self.best}
        partial = self.path.with_name("partial." + self.path.name)  # Keras wants .weights.h5.
        self.model.save_weights(partial, overwrite=True)
        with h5py.File(partial, "a") as weights:
            weights.attrs[NOTE_ATTRIBUTE] = json.dumps(note)
        os.replace(partial, self.path)
        write_json(self.note_path, note)


# What loading a backup raises when its metadata file is empty, cut off or
# holds stray bytes: `json` rejects it (`JSONDecodeError`; `UnicodeDecodeError`
# for bytes that are no text), or it parses without its `epoch` (`KeyError`).
# Not every `ValueError`: Keras raises one for an unbuilt model too, which no
# older copy would cure, and the fallback overwrites the newest copy.
TORN_METADATA = (json.JSONDecodeError, UnicodeDecodeError, KeyError)


class ResumingBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` that resumes past a torn metadata file too.

    Keras writes the backup's weights, then `training_metadata.json`, in
    place. With `double_checkpoint=True` it keeps the previous pair (`.bkp`)
    and falls back to it when loading raises `OSError` (torn weights), but a
    `kill -9` or power cut while the metadata is written leaves that file
    empty or cut off, and Keras' `json.loads` fails the resumed run with a
    traceback. This falls back to the previous pair then too, the same way.
    The previous metadata is needed (it holds the epoch to resume at); it
    exists from the second save on.

    Raises:
        InputError: At the start of training, when the backup is damaged and
            has no whole previous copy to resume from.
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except TORN_METADATA as error:
            self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        """Restores the previous pair over the damaged one, as Keras does on `OSError`."""
        files = compat.backup_files(self)
        if not all(os.path.exists(files[name]) for name in
                   ("prev_weights_path", "prev_training_metadata_path")):
            raise self._damaged() from error
        shutil.copyfile(files["prev_weights_path"], files["weights_path"])
        shutil.copyfile(files["prev_training_metadata_path"], files["training_metadata_path"])
        try:
            compat.reload_backup(self)
        except (OSError, *TORN_METADATA) as again:  # The previous pair is torn too.
            raise self._damaged() from again

    def _damaged(self) -> InputError:
        return InputError(f"the backup in {self.backup_dir} is damaged (cut short by a kill, "
                          "with no whole earlier copy); pass another --out, or delete "
                          f"{self.backup_dir} to train this run again from the start")


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """A non-chief worker's backup: resumes from the chief's, saves into scratch.

    Under `MultiWorkerMirroredStrategy` every worker must save when the chief
    does (saving can create variables, which is a collective step), but only
    the chief's copy may land in the run folder. Every worker must be able to
    read the chief's backup folder, as with Keras' own multi-worker recipe;
    resuming from it puts each worker at the chief's epoch, with the chief's
    weights, which are its own too.

    Args:
        chief_backup_dir: The chief's backup folder, read at the start.
        scratch_backup_dir: Where this worker's own saves go.
    """

    def __init__(self, chief_backup_dir: str, scratch_backup_dir: str):
        super().__init__(scratch_backup_dir, double_checkpoint=True)
        self.chief = ResumingBackup(chief_backup_dir, double_checkpoint=True)

    def set_model(self, model):
        super().set_model(model)
        self.chief.set_model(model)

    def on_train_begin(self, logs=None):
        self.chief.on_train_begin(logs)


def settle_batch_norm(model: keras.Model, batches) -> None:
    """Re-estimates every BatchNorm's moving statistics from `batches` ("precise BN").

    In inference mode BatchNorm normalizes with moving averages of the batch
    statistics seen in training, which lag behind the weights (momentum 0.99:
    hundreds of steps), and belong to other weights altogether when the
    weights are swapped for an average. This replaces them with the plain mean
    of the batch statistics of `batches` under the current weights. Other
    layers' training-mode behaviour (dropout) runs too but changes no weights.

    Args:
        model: The model, called eagerly in training mode once per batch.
        batches: Model inputs, e.g. a few fixed training batches.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for index, batch in enumerate(batches if layers else []):
            for layer in layers:  # moving = the running mean of the batches so far.
                layer.momentum = index / (index + 1)
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


class ValidateAveragedWeights(keras.callbacks.Callback):
    """Validates (and so checkpoints) the optimizer's moving average of the weights.

    With `use_ema=True` the optimizer keeps an exponential moving average of
    the trainable weights. This callback puts the average in place for each
    epoch's validation, with BatchNorm statistics re-estimated for it on
    `batches` (`settle_batch_norm`; the training statistics belong to the raw
    weights and, measured, left the average at 23-43% validation accuracy in
    the first epochs), and takes the training state back at the end of the
    epoch. So `val_*` metrics and a `ModelCheckpoint` on them see the averaged
    model, while training goes on from the raw weights. Place it after the
    checkpoint and before `BackupAndRestore`: callbacks run in list order, and
    a backup must hold the training state, or a resumed run would train on
    from the average.

    Args:
        batches: Model inputs for re-estimating BatchNorm's statistics.
    """

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.saved = None

    def on_test_begin(self, logs=None):
        optimizer = self.model.optimizer
        if self.saved is not None or not getattr(optimizer, "use_ema", False):
            return
        # All variables, not only the trainable ones: BatchNorm's statistics
        # and the dropout seeds, which re-estimating moves on.
        self.saved = [variable.numpy() for variable in self.model.variables]
        optimizer.finalize_variable_values(self.model.trainable_variables)
        settle_batch_norm(self.model, self.batches)

    def on_epoch_end(self, epoch, logs=None):
        if self.saved is None:
            return
        for variable, value in zip(self.model.variables, self.saved):
            variable.assign(value)
        self.saved = None
