"""One setting's trial in `mnist --tune`: how it trains at its study's budget, what it reports.

`StudyHyperModel` turns a study's setting into the run's configuration with
that one change and trains it on the budget's share of the images
(`tuning.mnist_settings.trial_budget`). `StudySearch` runs one study as a
KerasTuner grid search; each trial reports its best validation accuracy, its
curve, and which validation images its best epoch got right, packed into
metrics (`correct_metrics`), since metrics are all a distributed worker sends
its chief.
"""

from __future__ import annotations

import json
import math
import time
from typing import NamedTuple

import keras
import keras_tuner
import numpy as np

from hw1_keras import devices
from hw1_keras.config import to_dict
from hw1_keras.mnist import pipeline
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import MnistHyperModel, build_model, hyperparameters
from hw1_keras.mnist.train import settle_batches
from hw1_keras.text import counted
from hw1_keras.training import settle_batch_norm
from tuning.grid import ResumableGrid
from tuning.mnist_settings import Study, apply_setting, trial_budget
from tuning.progress import TrialLines, trial_number

OBJECTIVE = keras_tuner.Objective("val_accuracy", direction="max")
# BatchNorm's statistics are re-estimated on this many training batches
# before each validation (see SettledBatchNorm).
SETTLE_BATCHES = 20
SETTLE_BATCH_SIZE = 128
# Which validation images a trial got right travel as metrics, the only
# results a distributed worker sends its chief (as doubles): this many bits
# each, whole numbers a double holds exactly.
CORRECT_BITS = 48
CORRECT_METRIC = "val_correct"
_BIT_PLACES = np.arange(CORRECT_BITS, dtype=np.uint64)


def correct_metrics(correct: np.ndarray) -> dict[str, float]:
    """A per-image right/wrong mask as metrics `val_correct_<k>`, `CORRECT_BITS` images each."""
    bits = np.asarray(correct, bool)
    padded = np.zeros(math.ceil(len(bits) / CORRECT_BITS) * CORRECT_BITS, np.uint64)
    padded[:len(bits)] = bits
    words = (padded.reshape(-1, CORRECT_BITS) << _BIT_PLACES).sum(axis=1)
    return {f"{CORRECT_METRIC}_{k}": float(word) for k, word in enumerate(words)}


def correct_from_metrics(metrics: dict, count: int) -> np.ndarray | None:
    """The mask `correct_metrics` made of `count` images; None if the metrics lack it."""
    names = [f"{CORRECT_METRIC}_{k}" for k in range(math.ceil(count / CORRECT_BITS))]
    if not names or any(metrics.get(name) is None for name in names):
        return None
    words = np.array([int(metrics[name]) for name in names], np.uint64)
    return ((words[:, np.newaxis] >> _BIT_PLACES) & np.uint64(1)).astype(bool).ravel()[:count]


def config_key(config: MnistConfig) -> str:
    """Equal for two configurations exactly when they train the same model the same way."""
    return json.dumps(to_dict(config), sort_keys=True)


class StudyHyperModel(keras_tuner.HyperModel):
    """One study's setting -> the run's configuration with it -> model and training.

    Going through `MnistConfig` (rather than pinning hyperparameters one by
    one) lets a setting change several of them at once, as the filters study
    does (every block scales with the first), and makes the winner's
    configuration for retraining the same object the trial trained.

    Args:
        base: The run's configuration.
        study: The study whose hyperparameter the trial's values hold.
        epochs: Epochs per setting.
        jit_compile: XLA for the trials (`--jit`), as for the winner's retraining.
    """

    def __init__(self, base: MnistConfig, study: Study, epochs: int,
                 jit_compile: bool | str = "auto"):
        super().__init__(name=study.name)
        self.base = base
        self.study = study
        self.epochs = epochs
        self.jit_compile = jit_compile

    def config(self, hp: keras_tuner.HyperParameters) -> MnistConfig:
        return apply_setting(self.base, self.study, hp.get(self.study.parameter))

    def build(self, hp):
        # The same initial weights (where shapes agree) for every setting, so
        # that settings, not seeds, are compared.
        keras.utils.set_random_seed(self.base.seed)
        return build_model(hyperparameters(self.config(hp)))

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, **kwargs):
        """Trains the setting on its budget's share of `x`, `y` (`trial_budget`).

        Returns:
            A `Trained`: the History, and with `validation_data`, the
            validation accuracy per epoch and which images the best epoch got right.
        """
        config = self.config(hp)
        budget = trial_budget(self.base, config, len(x), self.epochs)
        x, y = x[:budget.images], y[:budget.images]
        # A fresh trainer per setting: the same shuffle and augmentation draws for each.
        trainer = MnistHyperModel.from_config(config, epochs=self.epochs,
                                              jit_compile=self.jit_compile)
        batches = settle_batches(config, x, SETTLE_BATCHES * SETTLE_BATCH_SIZE, SETTLE_BATCH_SIZE)
        settle = (SettledBatchNorm(batches) if validation_data is None
                  else ValidationCorrectness(batches, *validation_data))
        history = trainer.fit(hyperparameters(config), model, x, y,
                              callbacks=[settle, *(callbacks or [])], **kwargs)
        if validation_data is None:
            return Trained(history, [], None)
        return Trained(history, settle.curve, settle.correct)


class Trained(NamedTuple):
    """What `StudyHyperModel.fit` returns."""

    history: keras.callbacks.History
    curve: list[float]  # Validation accuracy after each epoch.
    correct: np.ndarray | None  # Per validation image, at the best epoch: classified right.


class SettledBatchNorm(keras.callbacks.Callback):
    """Re-estimates BatchNorm's moving statistics before each validation.

    In inference mode BatchNorm normalizes with moving averages (momentum
    0.99), which take hundreds of steps to catch up with the weights, and a
    short trial is scored before they have. Measured on --quick trials (16,000
    images x 2 epochs, 250 steps): validation accuracy 95.78% (2 blocks) and
    87.58% (3 blocks) as trained, 97.98% and 98.23% with the statistics
    re-estimated. Scored as trained, the studies would mostly compare how
    settled those averages are. So before each validation the averages are
    replaced by the plain mean of the batch statistics of a few fixed
    training batches ("precise BN"); training uses batch statistics and is
    not affected.

    Args:
        batches: Fixed training batches like the trial's own
            (`hw1_keras.mnist.train.settle_batches`: with augmentation, half of
            the images augmented, as the statistics were trained on).
    """

    def __init__(self, batches: list[np.ndarray]):
        super().__init__()
        self.batches = batches

    def on_test_begin(self, logs=None):
        settle_batch_norm(self.model, self.batches)


class ValidationCorrectness(SettledBatchNorm):
    """Validates after each epoch, BatchNorm settled, and keeps which images were right.

    In place of Keras' validation (which reports the accuracy, not which
    images make it), at the same cost: one pass over the validation images.
    Writes `val_accuracy` into the epoch's logs, like Keras' validation.

    Args:
        batches: As `SettledBatchNorm`'s.
        images, labels: The validation split (uint8 images, integer labels).
    """

    def __init__(self, batches: list[np.ndarray], images: np.ndarray, labels: np.ndarray):
        super().__init__(batches)
        self.dataset = pipeline.evaluation_dataset(images, labels)
        self.labels = np.asarray(labels)
        self.curve: list[float] = []
        self.correct: np.ndarray | None = None  # At the best epoch so far.

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()
        logits = self.model.predict(self.dataset, verbose=0)
        correct = np.argmax(logits, axis=1) == self.labels
        accuracy = float(correct.mean())
        if not self.curve or accuracy > max(self.curve):  # The first of equal epochs.
            self.correct = correct
        self.curve.append(accuracy)
        if logs is not None:
            logs[OBJECTIVE.name] = accuracy


class StudySearch(TrialLines, ResumableGrid, keras_tuner.GridSearch):
    """A grid search over one study's settings, one line per finished setting.

    Each trial trains one model at the study's equal budget and reports
    `val_accuracy` (the best over its epochs), `best_epoch`,
    `val_accuracy_epoch_<e>` for e = 1..epochs, `val_correct_<k>` (which
    validation images the best epoch got right, `correct_metrics`),
    `parameters` and `seconds`. No checkpoint is kept per trial (the default
    model's weights are 39 MB); the chosen configuration is retrained instead.

    Args:
        trained: Shared by the studies of one search: `config_key` -> `(metrics,
            where)` of every configuration trained so far. A setting found
            there is not trained again.
        *args, **kwargs: `TrialLines`' and `keras_tuner.GridSearch`'s.
    """

    def __init__(self, *args, trained: dict, **kwargs):
        self.trained = trained
        self._outcomes: dict[str, str] = {}
        self._last_metrics: dict[str, dict] = {}
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, x, y, validation_data, verbose=0, **fit_kwargs):
        hp = trial.hyperparameters
        key = config_key(self.hypermodel.config(hp))
        if key in self.trained:
            metrics, where = self.trained[key]
            self._outcomes[trial.trial_id] = f"same configuration as {where}: not trained again"
            self._last_metrics[trial.trial_id] = metrics
            return {**metrics, "seconds": 0.0}
        started = time.perf_counter()
        devices.clear_session()  # Free the previous setting's model (it runs gc too).
        model = self.hypermodel.build(hp)
        trained = self.hypermodel.fit(hp, model, x, y, validation_data=validation_data,
                                      verbose=verbose, **fit_kwargs)
        curve = trained.curve
        best = int(np.argmax(curve))
        metrics = {
            OBJECTIVE.name: curve[best],
            "best_epoch": best + 1,
            **{f"{OBJECTIVE.name}_epoch_{epoch}": value
               for epoch, value in enumerate(curve, 1)},
            **correct_metrics(trained.correct),
            "parameters": model.count_params(),
            "seconds": time.perf_counter() - started,
        }
        self.trained[key] = (metrics,
                             f"{self.hypermodel.name} trial {trial_number(trial.trial_id)}")
        budget = trial_budget(self.hypermodel.base, self.hypermodel.config(hp), len(x),
                              self.hypermodel.epochs)
        self._outcomes[trial.trial_id] = (
            f"{metrics['seconds']:.0f}s, {metrics['parameters']:,} parameters, "
            f"{counted(budget.steps, 'step')} on {counted(budget.images, 'image')}")
        self._last_metrics[trial.trial_id] = metrics
        return metrics

    def trial_outcome(self, trial) -> str:
        note = self._outcomes.pop(trial.trial_id, None)
        if trial.status != "COMPLETED" or note is None:
            return super().trial_outcome(trial)
        # Read from what this process trained: on a distributed worker the
        # trial's score and metrics live with the chief's oracle.
        metrics = self._last_metrics.pop(trial.trial_id)
        return (f"{OBJECTIVE.name} {metrics[OBJECTIVE.name]:.4g} "
                f"(epoch {metrics['best_epoch']})  {note}")

    def load_model(self, trial):
        """Not available: trials keep no weights; retrain `get_best_hyperparameters()`."""
        raise NotImplementedError(
            "the studies keep no model per trial; build and train the winner from its "
            "hyperparameters")

