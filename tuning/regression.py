"""`python run.py regression --tune`: the homework's tuning as two KerasTuner searches.

1. Screen: a random search over the architecture (depth, widths, activations;
   standing in for the homework's hand shrinking of a 3x128 network), learning
   rate, weight decay and batch size, each trial scored by a cheap k-fold
   cross-validation (3 folds, a fifth of the epochs).
2. Refine: a grid over learning rate x weight decay around the screen's
   winner (or the homework's own grid), each point scored by 5-fold
   cross-validation at the full budget, as the homework did; the run's own
   configuration is scored on the same folds beside it, unless the grid
   holds it already.
3. Choose: among the grid and the run's own configuration, the one-standard-
   error rule on paired fold differences (`tuning.select`): the run's own
   configuration stays unless something beats it by more than the noise.
4. The choice is trained on the whole training set and exported exactly like
   a plain run (`hw1_keras.task.train_and_export`).

The folds are `--cv interior` by default: held-out stretches of x inside the
data's range, which score how a configuration bridges a gap, as the test's
dark intervals ask, and never how it extrapolates past the ends.

The space the stages search, and how a trial's values become a
configuration: `tuning.regression_space`.

Everything lives in the run folder: the KerasTuner projects under `tuning/`
(rerunning the same command resumes them; finished trials are not redone),
`tuning.json` and `tuning.png`. Under KerasTuner's chief/worker environment
variables the same command runs as the chief (serves the trials, then trains
and exports the winner) or as a worker (runs trials); see `tuning.distributed`.
"""

from __future__ import annotations

import dataclasses
import time

import keras_tuner

from hw1_keras import devices
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import RegressionHyperModel
from hw1_keras.regression.train import TASK, load_data
from hw1_keras.task import train_and_export
from hw1_keras.text import plural
from tuning import distributed, report, resume, searches
from tuning.folds import check_folds, cv_folds
from tuning.kfold import KFoldGridSearch, KFoldRandomSearch, grid_size
from tuning.regression_space import (HOMEWORK_GRID, RECIPE_NAMES, SCREEN_MAX_PARAMETERS,
                                     config_from_values, config_values, describe, grid_space,
                                     grid_values, screen_space)
from tuning.settings import SCREEN_EPOCH_DIVISOR, TuneSettings

OBJECTIVE = keras_tuner.Objective("val_mse", direction="min")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the search: one KerasTuner tuner, its folds and its budget."""

    name: str
    tuner_class: type
    space: keras_tuner.HyperParameters
    folds: int
    epochs: int
    max_trials: int
    max_model_size: int | None = None
    cv: str = "interior"  # How the folds are made (`tuning.folds.cv_folds`).


def _search(stage: Stage, index: int, config: RegressionConfig, train,
            folder: searches.SearchFolder, jit_compile: bool | str = "auto"):
    """Runs (or resumes, or serves, or works on) one stage; returns its tuner.

    `jit_compile`: the trials' XLA setting; "auto" compiles only trials long
    enough to repay the compilation (`AUTO_JIT_MIN_STEPS`).
    """
    print(f"stage {index + 1} ({stage.name}): {plural(stage.max_trials, 'configuration')} x "
          f"{stage.folds}-fold CV, {stage.epochs} epochs each", flush=True)
    with folder.stage(index):
        with resume.reading_state(folder.tuning_dir / stage.name):
            tuner = stage.tuner_class(
                RegressionHyperModel(epochs=stage.epochs, log_every=config.log_every,
                                     seed=config.seed, jit_compile=jit_compile),
                objective=OBJECTIVE,
                max_trials=stage.max_trials,
                max_model_size=stage.max_model_size,
                seed=config.seed + 1,  # KerasTuner's oracles treat seed 0 as "none".
                hyperparameters=stage.space,
                tune_new_entries=False,
                # A diverged trial is a result (that corner is bad), not a reason to stop.
                max_consecutive_failed_trials=stage.max_trials + 1,
                folds=stage.folds,
                fold_seed=config.seed,
                cv=stage.cv,
                describe=describe,
                directory=str(folder.tuning_dir),
                project_name=stage.name,
                overwrite=False,
            )
        distributed.search(tuner, train.x, train.y)
    return tuner


def needs_baseline_stage(config: RegressionConfig, settings: TuneSettings) -> bool:
    """Whether the run's own configuration needs a stage of its own to be scored.

    Not when the grid is known to hold it before any trial runs: without a
    screen (whose winner would set the grid's architecture), a grid centred
    on it or the homework's grid with its values. Decided from the settings
    alone, so the chief and every worker run the same stages.
    """
    if settings.trials > 0:
        return True
    return settings.homework_grid and any(config_values(config)[name] not in values
                                          for name, values in HOMEWORK_GRID.items())


def tune(config: RegressionConfig, settings: TuneSettings, out: str | None = None,
         device: devices.DeviceConfig | None = None) -> dict:
    """Searches, then trains and exports the choice; see the module doc.

    Every input is validated before the run folder is touched.

    Args:
        config: The base configuration: its epochs are the grid's (the screen
            runs a fifth of them), its seed seeds folds, models and oracles,
            it is the reference the choice must beat by more than the noise,
            and its architecture and rates are the grid's centre when
            `settings.trials` is 0.
        settings: The search's size and options.
        out: The run folder (default: `runs/regression-tune`, the same every
            time, so that rerunning the command resumes).
        device: Hardware settings for the trials and the final training.

    Returns:
        The final model's metrics (as `metrics.json`), with `run_dir` added;
        on a distributed worker, `{"run_dir": ...}` only.
    """
    started = time.perf_counter()
    # Trials run one at a time on one device each; the device policy (precision,
    # XLA) applies to them and to the winner's final training alike.
    device = device or devices.DeviceConfig(distribute="none")
    runtime = devices.setup(device, "regression")
    # `--jit on/off` holds for every trial; auto leaves short trials uncompiled.
    trial_jit = "auto" if device.jit == "auto" else runtime.policy.jit
    data = load_data(config)
    train = data[0]
    # Named as the flag, which may be left at its default.
    check_folds(settings.folds, len(train), flag="--folds")
    cv_folds(settings.cv, train.x, settings.folds, config.seed)  # Too few points for them?
    screen_epochs = max(1, config.epochs // SCREEN_EPOCH_DIVISOR)
    base = center = config_values(config)
    # --ensemble changes only the final training: a rerun with another resumes.
    identity = {"search": settings.identity(),
                "config": {k: v for k, v in to_dict(config).items() if k != "ensemble"}}
    folder = searches.open_search("regression-tune", out, identity, settings.fresh)
    run_dir, role = folder.run_dir, folder.role
    print(f"regression --tune: {len(train)} training points, {settings.cv} folds -> {run_dir}"
          + folder.notes("stage"))

    stages = []

    def run_stage(stage: Stage):
        tuner = _search(stage, len(stages), config, train, folder, trial_jit)
        stages.append((stage, tuner))
        return tuner

    if needs_baseline_stage(config, settings):
        own = {name: [value] for name, value in base.items() if name in RECIPE_NAMES}
        space = grid_space(base, own, config.epochs)
        run_stage(Stage("baseline", KFoldGridSearch, space, settings.folds, config.epochs, 1,
                        cv=settings.cv))
    if settings.trials:
        stage = Stage("screen", KFoldRandomSearch, screen_space(screen_epochs),
                      settings.screen_folds, screen_epochs, settings.trials,
                      max_model_size=SCREEN_MAX_PARAMETERS, cv=settings.cv)
        tuner = run_stage(stage)
        if role != "worker":
            best = report.best_record(report.trial_records(tuner.oracle, stage.folds))
            if best is None:
                raise InputError("every screening trial failed (see the lines above); "
                                 "check the data and --epochs")
            center = best["hyperparameters"]
            print(f"screen's best: val_mse {best['mean']:.4g}: {describe(center)}")
    space = grid_space(center, grid_values(center, settings.homework_grid, settings.refine),
                       config.epochs)
    run_stage(Stage("grid", KFoldGridSearch, space, settings.folds, config.epochs,
                    grid_size(space), cv=settings.cv))
    if role == "worker":
        return searches.worker_result(folder, "trains and exports the winner")

    summary = report.write_report(stages, base, run_dir, started)
    choice = summary["choice"]
    winner = choice["winner"]
    print(f"chosen: val_mse {winner['mean']:.4g} ± {winner['std']:.2g} over "
          f"{settings.folds} folds, {describe(winner['hyperparameters'])}: "
          f"{choice['reason']}; training it on all {len(train)} points", flush=True)
    return train_and_export(TASK, config_from_values(config, winner["hyperparameters"]),
                            run_dir, data, started=started, runtime=runtime, extra={"tuning": {
        "winner_cv_val_mse": winner["mean"],
        "winner_cv_val_mse_std": winner["std"],
        "kept_own_configuration": choice["baseline"] is winner,
        "margin_over_own": choice["margin"],
        "margin_standard_error": choice["standard_error"],
        "reason": choice["reason"],
        "cv": settings.cv,
        "search_seconds": summary["seconds"],
        "base_config": to_dict(config),
    }})
