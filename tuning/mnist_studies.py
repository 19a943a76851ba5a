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

From the studies to one model (`tuning.mnist_combine.combine`): each study's
best setting changes the configuration only where it beats the run's own
setting by more than `NOISE_SES` standard errors of their paired, per-image
difference on the validation set. Those winners are applied together and the
combination trains once more at the same budget (the `combined` study, one
setting; no trial when it is a configuration trained already); the better of
it and the run's own configuration is retrained with the run's own recipe
(`hw1_keras.task.train_and_export`), or, if the combination loses, the
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
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import keras_tuner

from hw1_keras import devices
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.train import BACKUP, TASK
from hw1_keras.rerun import changes_from_saved
from hw1_keras.task import train_and_export
from hw1_keras.text import plural
from tuning import distributed, resume, searches
from tuning.mnist_report import setting_results, steps_line, study_records, summarize
from tuning.mnist_writeup import decision_lines, verdict_lines, write_reports
from tuning.mnist_combine import combine
from tuning.mnist_settings import (COMBINED, QUICK_TRIAL_IMAGES, Study, StudySettings,
                                   combination_study, setting_label)
from tuning.mnist_trial import OBJECTIVE, StudyHyperModel, StudySearch



class Search(NamedTuple):
    """What `search` leaves for retraining."""

    summary: dict | None  # `tuning.json`'s content; None on a distributed worker.
    folder: searches.SearchFolder  # The run folder, and this process's role in the search.
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
    data = mnist_data.load(config.data, config.validation_size, config.seed)
    images = settings.trial_images or len(data.x_train)
    if images > len(data.x_train):
        raise InputError(f"--trial-images got {images}"
                         + (" (the --quick preset's)" if settings.quick
                            and settings.trial_images == QUICK_TRIAL_IMAGES else "")
                         + f"; the training split has only {len(data.x_train)} images; "
                         f"pass --trial-images {len(data.x_train)} or fewer")
    folder = searches.open_search("mnist-tune", out, settings.identity(config), settings.fresh)
    run_dir, role = folder.run_dir, folder.role
    studies = settings.selected()
    every = sum(len(study.values) for study in studies)
    total = every if settings.trials is None else min(every, settings.trials)
    print(f"mnist --tune: {plural(len(studies), 'study', 'studies')}, "
          f"{plural(total, 'setting')}, each trained {plural(settings.epochs_per_trial, 'epoch')} "
          f"on {images:,} of {len(data.x_train):,} "
          f"training images and scored on {len(data.x_val):,} validation images -> {run_dir}"
          + folder.notes("study"))
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
        with folder.stage(index):
            tuner = _study_tuner(config, settings, study, min(len(study.values), budget),
                                 folder.tuning_dir, trained, started, jit_compile)
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
        with folder.stage(len(studies)):
            tuner = _study_tuner(config, settings, check, 1, folder.tuning_dir, trained, started,
                                 jit_compile, project=_check_project(check))
            distributed.search(tuner, x, y, validation_data=validation)
        if role != "worker":
            check_records = study_records(check, tuner.oracle, config,
                                          settings.epochs_per_trial, images, len(data.y_val))

    if role == "worker":
        return Search(None, folder, data, None)
    summary, retrain = summarize(results, check_records, combination, config, settings, images,
                                len(data.x_val), started)
    print("\n".join(decision_lines(summary)), flush=True)
    write_reports(summary, run_dir)
    return Search(summary, folder, data, retrain)


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
    summary, folder, data, retrain = search(config, settings, out, runtime.policy.jit)
    run_dir = folder.run_dir
    if summary is None:
        return searches.worker_result(folder, "retrains and exports the chosen configuration")
    winner, decision = summary["winner"], summary["decision"]
    print(f"retraining {winner['label']} for {plural(config.epochs, 'epoch')}", flush=True)
    tuning = {"winner": {key: winner[key] for key in
                         ("kind", "study", "label", "best", "best_epoch", "margin", "margin_se")
                         if key in winner},
              "changed_by": decision["changed_by"], "inside_noise": decision["inside_noise"],
              "search_seconds": summary["seconds"], "base_config": to_dict(config)}
    _drop_superseded_retraining(run_dir, retrain)
    return train_and_export(TASK, retrain, run_dir, data, started=started, runtime=runtime,
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
