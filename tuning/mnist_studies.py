"""`python run.py mnist --tune`: the homework's one-factor studies, then one model from them.

Each study (`tuning.mnist_settings.STUDIES`: depth, filters, dense units,
dropout, batch size, batch norm, stride-2 versus max-pool) is one
`keras_tuner.GridSearch` over its settings, every other hyperparameter pinned
to the configuration's value. Every setting trains from the same seed on the
first images of the training split (`--trial-images`), at an equal budget
(`tuning.mnist_settings.trial_budget`): the same epochs, and no more optimizer
steps and no more images than the run's own configuration, so that a smaller
batch does not win by taking more steps (it trains on fewer images, at its own
square-root-scaled learning rate). A setting is scored by its best validation
accuracy over its epochs, BatchNorm's moving statistics re-estimated before
each validation (`SettledBatchNorm`: short trials would otherwise be scored
before those averages settle); the per-epoch curve and which validation
images the best epoch got right are kept in the trial's metrics
(`val_accuracy_epoch_<e>`, `val_correct_<k>`), so the oracle's files hold all
a report needs, on a distributed chief too.

The configuration of the run recurs in every study (its own depth, its own
filters, ...). A setting whose configuration an earlier study already trained
is not trained again: its trial gets the earlier trial's results.

From the studies to one model (`tuning.mnist_settings.combine`): each study's
best setting changes the configuration only where it beats the run's own
setting by more than `NOISE_SES` standard errors of their paired, per-image
difference on the validation set. Those winners are applied together and the
combination trains once more at the same budget (the `combined` study, one
setting; no trial when it is a configuration trained already); the better of
it and the run's own configuration is retrained with the run's own recipe
(`hw1_keras.mnist.train.train_and_export`), or, if the combination loses, the
widest single win (`choose`).

The run folder gets `studies/<study>.png` (validation accuracy per epoch, one
line per setting), `studies.md` (every setting's best validation accuracy,
then which studies changed the configuration, by how much, and which winners
were inside the noise), `tuning.json` (every trial and that decision),
`tuning/` (KerasTuner's projects, which make a rerun resume), and then
everything a plain run writes, for the retrained configuration.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import keras
import keras_tuner
import numpy as np

from hw1_keras import devices
from hw1_keras import plots
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist import pipeline
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import MnistHyperModel, build_model, hyperparameters
from hw1_keras.mnist.train import BACKUP, settle_batches, train_and_export
from hw1_keras.runs import RUNS_ROOT, changes_from_saved, make_run_dir, write_json
from hw1_keras.text import plural
from hw1_keras.training import settle_batch_norm
from tuning import distributed, resume
from tuning.mnist_settings import (BUDGET_RULE, COMBINED, NOISE_SES, QUICK_TRIAL_IMAGES,
                                   Candidate, Paired, SettingResult, Study, StudySettings,
                                   apply_setting, choose, combination_study, combine,
                                   paired_difference, setting_label, trial_budget)
from tuning.grid import ResumableGrid
from tuning.progress import TrialLines, trial_number

OBJECTIVE = keras_tuner.Objective("val_accuracy", direction="max")
TUNING_DIR = "tuning"
STUDIES_DIR = "studies"
SUMMARY = "studies.md"
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
            f"{_count(budget.steps, 'step')} on {_count(budget.images, 'image')}")
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


class Search(NamedTuple):
    """What `search` leaves for retraining."""

    summary: dict | None  # `tuning.json`'s content; None on a distributed worker.
    run_dir: Path
    data: mnist_data.Mnist  # The loaded splits.
    retrain: MnistConfig | None  # The configuration chosen (`choose`); None on a worker.


def search(config: MnistConfig, settings: StudySettings, out: str | None = None,
           jit_compile: bool | str = "auto") -> Search:
    """Runs (or resumes) the studies and the check of their winners; writes the reports.

    Every input is validated before the run folder is touched. The check of
    the combination runs once every selected study ran all its settings
    (`--trials` did not stop them); it is one more stage, after the studies',
    in chief/worker mode too.

    Args:
        config: The run's configuration: the value of everything a study does
            not vary, the seed, the data. Its `epochs` are the final
            retraining's, not the trials'.
        settings: Which studies, how many settings, epochs and images each.
        out: The run folder (default `runs/mnist-tune`, the same every time,
            so that rerunning the command resumes).
        jit_compile: XLA for the trials (default: Keras' choice).

    Returns:
        `tuning.json`'s content, the run folder, the loaded data and the
        configuration to retrain.
    """
    started = time.perf_counter()
    role = distributed.role()
    port = distributed.base_port()
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    images = settings.trial_images or len(data.x_train)
    if images > len(data.x_train):
        raise InputError(f"--trial-images got {images}"
                         + (" (the --quick preset's)" if settings.quick
                            and settings.trial_images == QUICK_TRIAL_IMAGES else "")
                         + f"; the training split has only {len(data.x_train)} images; "
                         f"pass --trial-images {len(data.x_train)} or fewer")
    out = Path(out) if out else distributed.default_out("mnist-tune", role, RUNS_ROOT)
    identity = settings.identity(config)
    resuming = resume.check_resumable(out / TUNING_DIR, identity, settings.fresh)
    run_dir = make_run_dir(str(out), "mnist-tune")
    tuning_dir = resume.open_search_dir(run_dir / TUNING_DIR, identity, settings.fresh)

    studies = settings.selected()
    every = sum(len(study.values) for study in studies)
    total = every if settings.trials is None else min(every, settings.trials)
    print(f"mnist --tune: {plural(len(studies), 'study', 'studies')}, "
          f"{plural(total, 'setting')}, each trained {plural(settings.epochs_per_trial, 'epoch')} "
          f"on {images:,} of {len(data.x_train):,} "
          f"training images and scored on {len(data.x_val):,} validation images -> {run_dir}"
          + (" (resuming; --fresh starts over)" if resuming else "")
          + ("" if role == "single" else f"  ({role}, oracle port {port} + study)"))
    print(f"equal budget: {steps_line(config, images, settings.epochs_per_trial)}")
    if settings.quick:
        print("quick: few images and epochs, one seed per setting; differences of a few "
              "tenths of a point are noise, not findings")
    x, y = data.x_train[:images], data.y_train[:images]
    validation = (data.x_val, data.y_val)
    trained: dict = {}
    results = []
    budget = total
    for index, study in enumerate(studies):
        if budget <= 0:
            break
        settings_shown = ", ".join(setting_label(study, v, config) for v in study.values)
        print(f"study {study.name} ({study.parameter}): {settings_shown}", flush=True)
        # One oracle server per study (chief/worker mode), as for regression's stages.
        with distributed.stage_port(index, port):
            tuner = _study_tuner(config, settings, study, min(len(study.values), budget),
                                 tuning_dir, trained, started, jit_compile)
            distributed.search(tuner, x, y, validation_data=validation)
        budget -= tuner.oracle.max_trials
        if role == "worker":
            continue  # The chief holds the results; a worker only trains.
        records = study_records(study, tuner.oracle, config, settings.epochs_per_trial,
                                images, len(data.y_val))
        _remember(trained, records)  # Resumed trials too: a later study need not redo them.
        results.append((study, records))

    if role != "worker" and not any("best" in r for _, records in results for r in records):
        raise InputError("every setting failed (see the lines above); nothing to retrain")
    combination = None if role == "worker" else combine(config, setting_results(results))
    check_records = None
    if total == every:  # Every study complete: check their winners together.
        # A worker learns the combination from the chief, with each trial's setting.
        check = combination_study() if combination is None else combination_study(
            combination.value)
        if combination is not None:
            print("\n".join(verdict_lines(combination)))
            print(f"check of the winners together: {setting_label(check, check.values[0], config)}"
                  ", at the same budget", flush=True)
        with distributed.stage_port(len(studies), port):
            tuner = _study_tuner(config, settings, check, 1, tuning_dir, trained, started,
                                 jit_compile, project=_check_project(check))
            distributed.search(tuner, x, y, validation_data=validation)
        if role != "worker":
            check_records = study_records(check, tuner.oracle, config,
                                          settings.epochs_per_trial, images, len(data.y_val))

    if role == "worker":
        return Search(None, run_dir, data, None)
    summary, retrain = _summary(results, check_records, combination, config, settings, images,
                                len(data.x_val), started)
    print("\n".join(decision_lines(summary)), flush=True)
    _write_reports(summary, run_dir)
    return Search(summary, run_dir, data, retrain)


def steps_line(config: MnistConfig, images: int, epochs: int) -> str:
    """The equal-budget rule in numbers, for the output and `studies.md`."""
    own = trial_budget(config, config, images, epochs)
    return (f"every setting {plural(epochs, 'epoch')}, at most the run's own "
            f"{_count(own.steps, 'optimizer step')} (batch {config.batch_size}) and "
            f"{_count(images, 'image')}; "
            f"a smaller batch trains on fewer images in as many steps, a larger one on these "
            f"in fewer; a batch b at peak learning rate {config.learning_rate:g} x "
            f"sqrt(b / {config.batch_size})")


def _count(count: int, one: str) -> str:
    """`1 step`, `2,250 steps`: `plural` with thousands separated."""
    return f"{count:,} {one}{'s' * (count != 1)}"


def _remember(trained: dict, records: list[dict]) -> None:
    for record in records:
        if "best" in record:
            trained.setdefault(record["key"], (record["metrics"], record["where"]))


def _check_project(check: Study) -> str:
    """The check's KerasTuner project: one per combination, as a rerun may combine others."""
    digest = hashlib.sha256(check.values[0].encode()).hexdigest()[:10]
    return f"{COMBINED}-{digest}"


def _study_tuner(config, settings, study, max_trials, tuning_dir, trained, started,
                 jit_compile, project=None):
    space = keras_tuner.HyperParameters()
    space.Choice(study.parameter, list(study.values))
    project = project or study.name

    def describe(values):
        return f"{study.name}: {setting_label(study, values[study.parameter], config)}"

    with resume.reading_state(tuning_dir / project):
        return StudySearch(
            StudyHyperModel(config, study, settings.epochs_per_trial, jit_compile),
            objective=OBJECTIVE,
            max_trials=max_trials,
            hyperparameters=space,
            tune_new_entries=False,
            # A failed setting is a result of its study, not a reason to stop it.
            max_consecutive_failed_trials=len(study.values) + 1,
            trained=trained,
            describe=describe,
            started=started,
            directory=str(tuning_dir),
            project_name=project,
            overwrite=False,
        )


def study_records(study: Study, oracle, config: MnistConfig, epochs: int, images: int,
                  validation_images: int) -> list[dict]:
    """Every trial of one study, in start order.

    Each record: `study`, `trial_id`, `status`, `value` (the setting),
    `label`, `config` (the configuration it trained), `images` and `steps`
    (its budget); completed ones add `best` (best validation accuracy),
    `best_epoch`, `curve` (validation accuracy per epoch), `parameters`,
    `seconds` (0 for a configuration trained by an earlier study), and the
    internal `key`, `metrics`, `where` and `correct` (which validation images
    the best epoch got right; None for a trial that did not record them).
    """
    records = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        value = trial.hyperparameters.get(study.parameter)
        applied = apply_setting(config, study, value)
        budget = trial_budget(config, applied, images, epochs)
        record = {"study": study.name, "trial_id": trial_id, "status": trial.status,
                  "value": value, "label": setting_label(study, value, config),
                  "config": to_dict(applied), "images": budget.images, "steps": budget.steps}
        if trial.status == "COMPLETED" and trial.metrics.exists(OBJECTIVE.name):
            last = trial.metrics.get_last_value
            names = [OBJECTIVE.name, "best_epoch", "parameters", "seconds",
                     *(f"{OBJECTIVE.name}_epoch_{e}" for e in range(1, epochs + 1)),
                     *(name for name in trial.metrics.metrics
                       if name.startswith(CORRECT_METRIC))]
            metrics = {name: last(name) for name in names}
            record.update(
                best=metrics[OBJECTIVE.name], best_epoch=int(metrics["best_epoch"]),
                curve=[metrics[f"{OBJECTIVE.name}_epoch_{e}"] for e in range(1, epochs + 1)],
                parameters=int(metrics["parameters"]), seconds=metrics["seconds"],
                key=config_key(applied), metrics=metrics,
                where=f"{study.name} trial {trial_number(trial_id)}",
                correct=correct_from_metrics(metrics, validation_images))
        elif trial.message:
            record["message"] = trial.message.strip().splitlines()[-1]
        records.append(record)
    return records


def setting_results(results) -> list[tuple[Study, list[SettingResult]]]:
    """The studies' completed trials as `combine` reads them."""
    seconds = _seconds_by_key(r for _, records in results for r in records)
    return [(study, [_setting_result(r, seconds) for r in records if _usable(r)])
            for study, records in results]


def _usable(record: dict) -> bool:
    return record.get("correct") is not None


def _seconds_by_key(records) -> dict[str, float]:
    """Each configuration's training time: its trial that trained it, not a copy's 0."""
    seconds: dict[str, float] = {}
    for record in records:
        if "key" in record:
            seconds[record["key"]] = max(seconds.get(record["key"], 0.0), record["seconds"])
    return seconds


def _setting_result(record: dict, seconds: dict[str, float]) -> SettingResult:
    return SettingResult(record["value"], record["best"], record["correct"],
                         seconds[record["key"]])


def _summary(results, check_records, combination, config, settings, images,
             validation_images, started) -> tuple[dict, MnistConfig]:
    """`tuning.json`'s content (the settings, every trial, the decision) and what to retrain."""
    internal = ("key", "metrics", "where", "correct")
    first_trained: dict[str, str] = {}

    def shown(records):
        trials = []
        for record in records:
            entry = {k: v for k, v in record.items() if k not in internal}
            if "key" in record:
                origin = first_trained.setdefault(record["key"], record["where"])
                if origin != record["where"]:
                    entry["same_as"] = origin
            trials.append(entry)
        return trials

    studies = [{"name": study.name, "parameter": study.parameter, "title": study.title,
                "trials": shown(records)} for study, records in results]
    check = None if check_records is None else {
        "label": check_records[0]["label"] if check_records else None,
        "value": combination.value, "trials": shown(check_records)}
    decision, retrain = _decide(results, check_records, combination, config)
    decision["budget_line"] = steps_line(config, images, settings.epochs_per_trial)
    summary = {
        "objective": OBJECTIVE.name,
        "epochs_per_trial": settings.epochs_per_trial,
        "trial_images": images,
        "validation_images": validation_images,
        "quick": settings.quick,
        "base_config": to_dict(config),
        "studies": studies,
        "check": check,
        "decision": decision,
        "winner": decision["retrained"],
        "seconds": time.perf_counter() - started,
    }
    return summary, retrain


def _decide(results, check_records, combination, config) -> tuple[dict, MnistConfig]:
    """`tuning.json`'s `decision`: each study's verdict, the combination, the choice."""
    everything = [r for _, records in results for r in records] + list(check_records or [])
    seconds = _seconds_by_key(everything)
    base_key = config_key(config)
    base_record = next((r for r in everything if r.get("key") == base_key and _usable(r)), None)

    def candidate(kind, study_name, value, label, applied, record):
        result = None if record is None else _setting_result(record, seconds)
        return Candidate(kind, study_name, value, label, applied, result), record

    base, _ = candidate("base", None, None, "the run's own configuration", config, base_record)
    singles = []  # (candidate, its record)
    for verdict in combination.changes:
        study = next(s for s, _ in results if s.name == verdict.study)
        record = next(r for s, rs in results if s is study for r in rs
                      if _usable(r) and r["value"] == verdict.value)
        singles.append(candidate("single", verdict.study, verdict.value, verdict.label,
                                 apply_setting(config, study, verdict.value), record))
    check_record = next((r for r in check_records or [] if _usable(r)), None)
    label = setting_label(combination_study(combination.value), combination.value, config)
    combined = None
    if check_record is not None:
        combined, _ = candidate("combination", COMBINED, combination.value, label,
                                combination.config, check_record)
    chosen, reason = choose(base, combined, [single for single, _ in singles])
    chosen_record = {"base": base_record, "combination": check_record}.get(chosen.kind) or next(
        (record for single, record in singles if single is chosen), None)

    def versus_base(result):
        if result is None or base.result is None:
            return {}
        return _paired_entry(paired_difference(result.correct, base.result.correct))

    verdicts = [_verdict_entry(v) for v in combination.verdicts]
    decision = {
        "budget": BUDGET_RULE,
        "noise_ses": NOISE_SES,
        "base": {"label": base.label,
                 "best": None if base.result is None else base.result.accuracy},
        "verdicts": verdicts,
        "changed_by": [v["study"] for v in verdicts if v["changed"]],
        "inside_noise": [v["study"] for v in verdicts
                         if not v["changed"] and v.get("margin", 0) > 0],
        "combination": {"label": label, "value": combination.value,
                        "config": to_dict(combination.config),
                        "checked": check_record is not None,
                        "best": None if combined is None else combined.result.accuracy,
                        **versus_base(None if combined is None else combined.result)},
        "retrained": {"kind": chosen.kind, "study": chosen.study, "label": chosen.label,
                      "value": chosen.value,
                      "best": None if chosen.result is None else chosen.result.accuracy,
                      "best_epoch": None if chosen_record is None else chosen_record["best_epoch"],
                      **versus_base(chosen.result), "reason": reason,
                      "config": to_dict(chosen.config)},
    }
    return decision, chosen.config


def _paired_entry(paired: Paired | None) -> dict:
    if paired is None:
        return {}
    return {"margin": paired.margin, "margin_se": paired.se, "setting_only": paired.a_only,
            "base_only": paired.b_only}


def _verdict_entry(verdict) -> dict:
    return {"study": verdict.study, "setting": verdict.label, "value": verdict.value,
            "best": verdict.accuracy, **_paired_entry(verdict.paired),
            "seconds_ratio": verdict.seconds_ratio, "changed": verdict.changed,
            "reason": verdict.reason}


def _points(entry: dict) -> str:
    """`+0.25 ± 0.11 points (2.3 SE)`: a margin over the run's own configuration."""
    se = entry["margin_se"]
    ratio = f" ({entry['margin'] / se:.1f} SE)" if se > 0 else ""
    return f"{100 * entry['margin']:+.2f} ± {100 * se:.2f} points{ratio}"


def verdict_text(entry: dict) -> str:
    """One study's verdict (`tuning.json`'s `decision.verdicts` entry) in a line."""
    if entry["value"] is None:
        return f"{entry['study']}: not compared ({entry['reason']})"
    time_note = (f", {entry['seconds_ratio']:.2g}x the time"
                 if entry["seconds_ratio"] is not None else "")
    verdict = "changes the configuration" if entry["changed"] else entry["reason"]
    return (f"{entry['study']}: {entry['setting']} {entry['best']:.2%} vs the run's own "
            f"{entry['best'] - entry['margin']:.2%}: {_points(entry)}{time_note}: {verdict}")


def verdict_lines(combination) -> list[str]:
    """What each study says, printed before the check of their winners."""
    return ([f"studies -> one configuration (a study's best setting changes it when it beats "
             f"the run's own by more than {NOISE_SES:g} SE of their paired difference):"]
            + [f"  {verdict_text(_verdict_entry(v))}" for v in combination.verdicts])


def decision_lines(summary: dict) -> list[str]:
    """The check and the choice, in a few lines."""
    decision = summary["decision"]
    combination, retrained = decision["combination"], decision["retrained"]
    lines = []
    if combination["checked"] and "margin" in combination:
        lines.append(f"check: {combination['label']}: {combination['best']:.2%}, "
                     f"{_points(combination)} over the run's own configuration")
    elif not combination["checked"]:
        lines.append("check: not run (--trials stopped the studies before their end)")
    versus = f", {_points(retrained)} over the run's own" if "margin" in retrained else ""
    lines.append(f"chosen: {retrained['label']}: {retrained['reason']}"
                 + (f" (validation {retrained['best']:.2%}{versus})"
                    if retrained["best"] is not None else ""))
    return lines


def _write_reports(summary: dict, run_dir: Path) -> None:
    """`studies/<study>.png`, `studies.md` and `tuning.json`."""
    folder = run_dir / STUDIES_DIR
    folder.mkdir(exist_ok=True)
    epochs = list(range(1, summary["epochs_per_trial"] + 1))
    for study in summary["studies"]:
        curves = {t["label"]: t["curve"] for t in study["trials"] if "curve" in t}
        if curves:
            plots.learning_curves(
                epochs, curves, folder / f"{study['name']}.png", ylabel="validation accuracy",
                title=f"{study['title']}\n{plural(len(epochs), 'epoch')} x "
                      f"{summary['trial_images']:,} images per setting (fewer for a "
                      f"smaller batch)", marker="o")
    (run_dir / SUMMARY).write_text(summary_table(summary))
    write_json(run_dir / "tuning.json", summary)


def summary_table(summary: dict) -> str:
    """`studies.md`: what was run, one row per setting, each study's best in bold, the decision."""
    done = [t for s in summary["studies"] for t in s["trials"] if "best" in t]
    accuracy = float(np.mean([t["best"] for t in done])) if done else math.nan
    error = math.sqrt(accuracy * (1 - accuracy) / summary["validation_images"])
    base = summary["base_config"]
    decision = summary["decision"]
    lines = [
        "# MNIST studies",
        "",
        f"Each setting trained {plural(summary['epochs_per_trial'], 'epoch')} on "
        f"{summary['trial_images']:,} training images "
        f"({'with' if base['augmented_copy'] else 'without'} an augmented copy), "
        f"from seed {base['seed']}, everything else as configured (filters "
        f"{'/'.join(map(str, base['filters']))}, {base['dense_units']} dense units, dropout "
        f"{base['dropout']:g}/{base['dense_dropout']:g}, batch {base['batch_size']}, batch norm "
        f"{'on' if base['batch_norm'] else 'off'}, {base['downsampling']}). Equal budget: "
        f"{decision['budget_line']}. Score: the best "
        f"validation accuracy over the epochs, BatchNorm's statistics (in settings with "
        f"BatchNorm) re-estimated on "
        f"{min(SETTLE_BATCHES * SETTLE_BATCH_SIZE, summary['trial_images']):,} training images"
        f"{', half of them augmented,' if base['augmented_copy'] else ''} before each validation, "
        f"on {summary['validation_images']:,} images "
        f"(one standard error of an accuracy of {accuracy:.1%} on them: "
        f"±{100 * error:.2f} points; seed-to-seed variation comes on top).",
        "",
    ]
    if summary["quick"]:
        lines += ["**Quick run (`--quick`): few images, few epochs, one seed. Differences of "
                  "a few tenths of a point are noise; run without `--quick` before "
                  "concluding anything.**", ""]
    lines += ["| study | setting | best validation accuracy | epoch | images | steps | "
              "parameters | seconds |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for study in summary["studies"]:
        scores = [t["best"] for t in study["trials"] if "best" in t]
        for index, trial in enumerate(study["trials"]):
            name = study["name"] if index == 0 else ""
            budget = f"{trial['images']:,} | {trial['steps']:,}"
            if "best" not in trial:
                lines.append(f"| {name} | {trial['label']} | {trial['status'].lower()} | | "
                             f"{budget} | | |")
                continue
            bold = "**" if trial["best"] == max(scores) else ""
            seconds = (f"{trial['seconds']:.0f}" if "same_as" not in trial
                       else f"as {trial['same_as']}")
            lines.append(f"| {name} | {bold}{trial['label']}{bold} | "
                         f"{bold}{trial['best']:.2%}{bold} | {trial['best_epoch']} | {budget} | "
                         f"{trial['parameters']:,} | {seconds} |")
    lines += ["", "## From the studies to one model", "",
              f"A study's best setting changes the configuration when it beats the run's own "
              f"setting by more than {decision['noise_ses']:g} standard errors of their "
              f"difference, paired image by image on the {summary['validation_images']:,} "
              f"validation images (both trained from the same seed on the same images; "
              f"McNemar's discordant pairs carry the noise). Time: the setting's training "
              f"time over the run's own setting's.",
              "",
              "| study | best setting | validation | vs the run's own, points ± SE | time | "
              "verdict |",
              "| --- | --- | ---: | ---: | ---: | --- |"]
    for entry in decision["verdicts"]:
        if entry["value"] is None:
            lines.append(f"| {entry['study']} | | | | | not compared ({entry['reason']}) |")
            continue
        ratio = "" if entry["seconds_ratio"] is None else f"{entry['seconds_ratio']:.2g}x"
        verdict = "**changes it**" if entry["changed"] else entry["reason"]
        lines.append(f"| {entry['study']} | {entry['setting']} | {entry['best']:.2%} | "
                     f"{_points(entry)} | {ratio} | {verdict} |")
    lines += [""] + [f"{line[0].upper()}{line[1:]}." for line in decision_lines(summary)]
    lines += ["", "Retrained with the run's own recipe and exported (`metrics.json`)."]
    return "\n".join(lines) + "\n"


def tune(config: MnistConfig, settings: StudySettings, out: str | None = None,
         device: devices.DeviceConfig | None = None) -> dict:
    """Runs the studies, then retrains and exports the chosen configuration like a plain run.

    Under KerasTuner's chief/worker environment variables, the chief serves
    the settings (one oracle server per study and one for the check, on
    consecutive ports) and retrains; workers train settings and exit.

    Returns:
        The retrained configuration's metrics (as `metrics.json`), with
        `run_dir`; on a distributed worker, `{"run_dir": ...}` only.
    """
    started = time.perf_counter()
    # Trials run one at a time on one device each; the device policy (precision,
    # XLA) applies to them and to the final training alike.
    runtime = devices.setup(device or devices.DeviceConfig(distribute="none"), "mnist")
    summary, run_dir, data, retrain = search(config, settings, out, runtime.policy.jit)
    if summary is None:
        print("worker done; the chief retrains and exports the chosen configuration")
        return {"run_dir": str(run_dir)}
    winner, decision = summary["winner"], summary["decision"]
    print(f"retraining {winner['label']} for {plural(config.epochs, 'epoch')}", flush=True)
    tuning = {"winner": {key: winner[key] for key in
                         ("kind", "study", "label", "best", "best_epoch", "margin", "margin_se")
                         if key in winner},
              "changed_by": decision["changed_by"], "inside_noise": decision["inside_noise"],
              "search_seconds": summary["seconds"], "base_config": to_dict(config)}
    _drop_superseded_retraining(run_dir, retrain)
    return train_and_export(retrain, run_dir, data, started=started, runtime=runtime,
                            extra={"tuning": tuning})


def _drop_superseded_retraining(run_dir: Path, retrain: MnistConfig) -> None:
    """Discards an interrupted retraining of a setting that is no longer the winner.

    A rerun may extend a search (more studies or trials), and the new winner
    can differ from the one whose retraining a kill interrupted. That backup
    cannot be resumed, and a plain run's advice ("rerun it with its own
    flags") cannot apply to a search: left there, it would refuse every rerun.
    """
    backup = run_dir / BACKUP
    if not backup.exists():
        return
    changes = changes_from_saved(run_dir, to_dict(retrain))
    if changes != "":
        print(f"the interrupted retraining of an earlier winner is dropped "
              f"({changes or 'no config.json'}); the new winner trains from its first epoch",
              flush=True)
        shutil.rmtree(backup)
