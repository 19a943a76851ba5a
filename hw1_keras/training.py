"""Training helpers every task shares: seeding, progress lines, divergence, BatchNorm.

What a killed training resumes from (checkpoint and backup): `hw1_keras.backup`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import keras

from hw1_keras.errors import InputError
from hw1_keras.text import plural

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
