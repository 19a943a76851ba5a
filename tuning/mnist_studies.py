"""`python run.py mnist --tune`: the homework's one-factor studies as KerasTuner searches.

Each study (`tuning.mnist_settings.STUDIES`: depth, filters, dense units,
dropout, batch size, batch norm, stride-2 versus max-pool) is one
`keras_tuner.GridSearch` over its settings, every other hyperparameter pinned
to the configuration's value. Every setting trains once on the training split
(or its first `--trial-images` images) from the same seed, and is scored by
its best validation accuracy over its epochs, BatchNorm's moving statistics
re-estimated before each validation (`SettledBatchNorm`: short trials would
otherwise be scored before those averages settle); the per-epoch curve is kept in
the trial's metrics (`val_accuracy_epoch_<e>`), so the oracle's files hold all
a report needs.

The configuration of the run recurs in every study (its own depth, its own
filters, ...). A setting whose configuration an earlier study already trained
is not trained again: its trial gets the earlier trial's results.

The run folder gets `studies/<study>.png` (validation accuracy per epoch, one
line per setting), `studies.md` (every setting's best validation accuracy),
`tuning.json` (every trial), `tuning/` (KerasTuner's projects, which make a
rerun resume), and then everything a plain run writes, for the best setting
retrained with the run's own recipe (`hw1_keras.mnist.train.train_and_export`).
"""

from __future__ import annotations

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
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import MnistHyperModel, build_model, hyperparameters
from hw1_keras.mnist.train import BACKUP, settle_batches, train_and_export
from hw1_keras.runs import RUNS_ROOT, changes_from_saved, make_run_dir, write_json
from hw1_keras.text import plural
from hw1_keras.training import settle_batch_norm
from tuning import distributed, mnist_settings, resume
from tuning.mnist_settings import (QUICK_TRIAL_IMAGES, Study, StudySettings, apply_setting,
                                   setting_label)
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

    def fit(self, hp, model, x, y, callbacks=None, **kwargs):
        config = self.config(hp)
        # A fresh trainer per setting: the same shuffle and augmentation draws for each.
        trainer = MnistHyperModel.from_config(config, epochs=self.epochs,
                                              jit_compile=self.jit_compile)
        settle = SettledBatchNorm(settle_batches(
            config, x, SETTLE_BATCHES * SETTLE_BATCH_SIZE, SETTLE_BATCH_SIZE))
        return trainer.fit(hyperparameters(config), model, x, y,
                           callbacks=[settle, *(callbacks or [])], **kwargs)


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


class StudySearch(TrialLines, ResumableGrid, keras_tuner.GridSearch):
    """A grid search over one study's settings, one line per finished setting.

    Each trial trains one model and reports `val_accuracy` (the best over its
    epochs), `best_epoch`, `val_accuracy_epoch_<e>` for e = 1..epochs,
    `parameters` and `seconds`. No checkpoint is kept per trial (the default
    model's weights are 39 MB); the winner is retrained instead.

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
        history = self.hypermodel.fit(hp, model, x, y, validation_data=validation_data,
                                      verbose=verbose, **fit_kwargs)
        curve = [float(value) for value in history.history[OBJECTIVE.name]]
        best = int(np.argmax(curve))
        metrics = {
            OBJECTIVE.name: curve[best],
            "best_epoch": best + 1,
            **{f"{OBJECTIVE.name}_epoch_{epoch}": value
               for epoch, value in enumerate(curve, 1)},
            "parameters": model.count_params(),
            "seconds": time.perf_counter() - started,
        }
        self.trained[key] = (metrics,
                             f"{self.hypermodel.name} trial {trial_number(trial.trial_id)}")
        self._outcomes[trial.trial_id] = (
            f"{metrics['seconds']:.0f}s, {metrics['parameters']:,} parameters")
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
    """What `search` leaves for retraining the winner."""

    summary: dict | None  # `tuning.json`'s content; None on a distributed worker.
    run_dir: Path
    data: mnist_data.Mnist  # The loaded splits.


def search(config: MnistConfig, settings: StudySettings, out: str | None = None,
           jit_compile: bool | str = "auto") -> Search:
    """Runs (or resumes) the studies; writes the plots, the table and `tuning.json`.

    Every input is validated before the run folder is touched.

    Args:
        config: The run's configuration: the value of everything a study does
            not vary, the seed, the data. Its `epochs` are the winner's
            retraining, not the trials'.
        settings: Which studies, how many settings, epochs and images each.
        out: The run folder (default `runs/mnist-tune`, the same every time,
            so that rerunning the command resumes).
        jit_compile: XLA for the trials (default: Keras' choice).

    Returns:
        `tuning.json`'s content, the run folder and the loaded data.
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
    total = sum(len(study.values) for study in studies)
    total = total if settings.trials is None else min(total, settings.trials)
    print(f"mnist --tune: {plural(len(studies), 'study', 'studies')}, "
          f"{plural(total, 'setting')}, each trained {plural(settings.epochs_per_trial, 'epoch')} "
          f"on {images:,} of {len(data.x_train):,} "
          f"training images and scored on {len(data.x_val):,} validation images -> {run_dir}"
          + (" (resuming; --fresh starts over)" if resuming else "")
          + ("" if role == "single" else f"  ({role}, oracle port {port} + study)"))
    if settings.quick:
        print("quick: few images and epochs, one seed per setting; differences of a few "
              "tenths of a point are noise, not findings")
    x, y = data.x_train[:images], data.y_train[:images]
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
            distributed.search(tuner, x, y, validation_data=(data.x_val, data.y_val))
        budget -= tuner.oracle.max_trials
        if role == "worker":
            continue  # The chief holds the results; a worker only trains.
        records = study_records(study, tuner.oracle, config, settings.epochs_per_trial)
        for record in records:  # Resumed trials too: a later study need not redo them.
            if "best" in record:
                trained.setdefault(record["key"], (record["metrics"], record["where"]))
        results.append((study, records))

    if role == "worker":
        return Search(None, run_dir, data)
    summary = _summary(results, config, settings, images, len(data.x_val), started)
    if summary["winner"] is None:
        raise InputError("every setting failed (see the lines above); nothing to retrain")
    _write_reports(summary, run_dir)
    return Search(summary, run_dir, data)


def _study_tuner(config, settings, study, max_trials, tuning_dir, trained, started,
                 jit_compile):
    space = keras_tuner.HyperParameters()
    space.Choice(study.parameter, list(study.values))

    def describe(values):
        return f"{study.name}: {setting_label(study, values[study.parameter], config)}"

    with resume.reading_state(tuning_dir / study.name):
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
            project_name=study.name,
            overwrite=False,
        )


def study_records(study: Study, oracle, config: MnistConfig, epochs: int) -> list[dict]:
    """Every trial of one study, in start order.

    Each record: `study`, `trial_id`, `status`, `value` (the setting),
    `label`, `config` (the configuration it trained); completed ones add
    `best` (best validation accuracy), `best_epoch`, `curve` (validation
    accuracy per epoch), `parameters`, `seconds` (0 for a configuration
    trained by an earlier study), and the internal `key`, `metrics`, `where`.
    """
    records = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        value = trial.hyperparameters.get(study.parameter)
        applied = apply_setting(config, study, value)
        record = {"study": study.name, "trial_id": trial_id, "status": trial.status,
                  "value": value, "label": setting_label(study, value, config),
                  "config": to_dict(applied)}
        if trial.status == "COMPLETED" and trial.metrics.exists(OBJECTIVE.name):
            last = trial.metrics.get_last_value
            names = [OBJECTIVE.name, "best_epoch", "parameters", "seconds",
                     *(f"{OBJECTIVE.name}_epoch_{e}" for e in range(1, epochs + 1))]
            metrics = {name: last(name) for name in names}
            record.update(
                best=metrics[OBJECTIVE.name], best_epoch=int(metrics["best_epoch"]),
                curve=[metrics[f"{OBJECTIVE.name}_epoch_{e}"] for e in range(1, epochs + 1)],
                parameters=int(metrics["parameters"]), seconds=metrics["seconds"],
                key=config_key(applied), metrics=metrics,
                where=f"{study.name} trial {trial_number(trial_id)}")
        elif trial.message:
            record["message"] = trial.message.strip().splitlines()[-1]
        records.append(record)
    return records


def _summary(results, config, settings, images, validation_images, started) -> dict:
    """`tuning.json`'s content: the settings, every trial, the winner."""
    internal = ("key", "metrics", "where")
    first_trained: dict[str, str] = {}
    studies = []
    for study, records in results:
        trials = []
        for record in records:
            shown = {k: v for k, v in record.items() if k not in internal}
            if "key" in record:
                origin = first_trained.setdefault(record["key"], record["where"])
                if origin != record["where"]:
                    shown["same_as"] = origin
            trials.append(shown)
        studies.append({"name": study.name, "parameter": study.parameter,
                        "title": study.title, "trials": trials})
    done = [t for s in studies for t in s["trials"] if "best" in t]
    # max() keeps the first of equals: the earliest study's, usually the base configuration.
    winner = max(done, key=lambda t: t["best"]) if done else None
    return {
        "objective": OBJECTIVE.name,
        "epochs_per_trial": settings.epochs_per_trial,
        "trial_images": images,
        "validation_images": validation_images,
        "quick": settings.quick,
        "base_config": to_dict(config),
        "studies": studies,
        "winner": winner,
        "seconds": time.perf_counter() - started,
    }


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
                      f"{summary['trial_images']:,} images per setting", marker="o")
    (run_dir / SUMMARY).write_text(summary_table(summary))
    write_json(run_dir / "tuning.json", summary)


def summary_table(summary: dict) -> str:
    """`studies.md`: what was run, then one row per setting, each study's best in bold."""
    done = [t for s in summary["studies"] for t in s["trials"] if "best" in t]
    accuracy = float(np.mean([t["best"] for t in done])) if done else math.nan
    error = math.sqrt(accuracy * (1 - accuracy) / summary["validation_images"])
    base = summary["base_config"]
    lines = [
        "# MNIST studies",
        "",
        f"Each setting trained {plural(summary['epochs_per_trial'], 'epoch')} on "
        f"{summary['trial_images']:,} training images "
        f"({'with' if base['augmented_copy'] else 'without'} an augmented copy), "
        f"from seed {base['seed']}, everything else as configured (filters "
        f"{'/'.join(map(str, base['filters']))}, {base['dense_units']} dense units, dropout "
        f"{base['dropout']:g}/{base['dense_dropout']:g}, batch {base['batch_size']}, batch norm "
        f"{'on' if base['batch_norm'] else 'off'}, {base['downsampling']}). Score: the best "
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
    lines += ["| study | setting | best validation accuracy | epoch | parameters | seconds |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for study in summary["studies"]:
        scores = [t["best"] for t in study["trials"] if "best" in t]
        for index, trial in enumerate(study["trials"]):
            name = study["name"] if index == 0 else ""
            if "best" not in trial:
                lines.append(f"| {name} | {trial['label']} | {trial['status'].lower()} | | | |")
                continue
            bold = "**" if trial["best"] == max(scores) else ""
            seconds = (f"{trial['seconds']:.0f}" if "same_as" not in trial
                       else f"as {trial['same_as']}")
            lines.append(f"| {name} | {bold}{trial['label']}{bold} | "
                         f"{bold}{trial['best']:.2%}{bold} | {trial['best_epoch']} | "
                         f"{trial['parameters']:,} | {seconds} |")
    winner = summary["winner"]
    if winner is not None:
        lines += ["", f"Best: {winner['study']}: {winner['label']} ({winner['best']:.2%}), "
                      "retrained with the run's own recipe and exported (`metrics.json`)."]
    return "\n".join(lines) + "\n"


def tune(config: MnistConfig, settings: StudySettings, out: str | None = None,
         device: devices.DeviceConfig | None = None) -> dict:
    """Runs the studies, then retrains and exports the best setting like a plain run.

    Under KerasTuner's chief/worker environment variables, the chief serves
    the settings (one oracle server per study, on consecutive ports) and
    retrains the winner; workers train settings and exit.

    Returns:
        The retrained winner's metrics (as `metrics.json`), with `run_dir`; on
        a distributed worker, `{"run_dir": ...}` only.
    """
    started = time.perf_counter()
    # Trials run one at a time on one device each; the device policy (precision,
    # XLA) applies to them and to the winner's final training alike.
    runtime = devices.setup(device or devices.DeviceConfig(distribute="none"), "mnist")
    summary, run_dir, data = search(config, settings, out, runtime.policy.jit)
    if summary is None:
        print("worker done; the chief retrains and exports the best setting")
        return {"run_dir": str(run_dir)}
    winner = summary["winner"]
    retrain = apply_setting(config, mnist_settings.study(winner["study"]), winner["value"])
    print(f"best: {winner['study']}: {winner['label']}, validation accuracy "
          f"{winner['best']:.2%}; retraining it for {plural(config.epochs, 'epoch')}", flush=True)
    tuning = {"winner": {key: winner[key] for key in ("study", "label", "best", "best_epoch")},
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
