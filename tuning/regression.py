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
   a plain run (`hw1_keras.regression.train.train_and_export`).

The folds are `--cv interior` by default: held-out stretches of x inside the
data's range, which score how a configuration bridges a gap, as the test's
dark intervals ask, and never how it extrapolates past the ends.

Everything lives in the run folder: the KerasTuner projects under `tuning/`
(rerunning the same command resumes them; finished trials are not redone),
`tuning.json` and `tuning.png`. Under KerasTuner's chief/worker environment
variables the same command runs as the chief (serves the trials, then trains
and exports the winner) or as a worker (runs trials); see `tuning.distributed`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras_tuner

from hw1_keras import devices
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import MAX_DEPTH, RegressionHyperModel
from hw1_keras.regression.train import load_data, train_and_export
from hw1_keras.runs import RUNS_ROOT, make_run_dir, write_json
from hw1_keras.text import plural
from tuning import distributed, report, resume, select
from tuning.kfold import KFoldGridSearch, KFoldRandomSearch, check_folds, cv_folds, grid_size
from tuning.settings import SCREEN_EPOCH_DIVISOR, TuneSettings

OBJECTIVE = keras_tuner.Objective("val_mse", direction="min")
# The screen's search space. Widths as powers of two keep the winners readable;
# "linear" is left out as useless for a hidden layer.
SCREEN_UNITS = (4, 8, 16, 32, 64)
SCREEN_ACTIVATIONS = ("selu", "sigmoid", "tanh", "relu", "elu", "gelu")
# The homework's batch sizes: a batch of 25 would double the grid's steps.
SCREEN_BATCH_SIZES = (50, 100)
# Networks of at most about twice the homework's 1,185 parameters: a 5-fold
# grid point of a larger one takes too long for the whole search to fit in
# 10 minutes on 2 cores (per-step time grows with the width). Larger draws
# fail at once as "Oversized" trials (KerasTuner's max_model_size).
SCREEN_MAX_PARAMETERS = 2_500
SCREEN_RATE_RANGE = (1e-4, 1e-2)
SCREEN_DECAY_RANGE = (1e-4, 1e-2)
# The grid around a winner: rates and decays this many times smaller/larger
# (its batch size as the screen chose it: a second batch size would double
# the grid, and the search would no longer fit 5 minutes on 2 cores).
GRID_FACTORS = (2 / 3, 1.0, 3 / 2)
# How far a configuration is from the run's own, for the one-standard-error
# rule: another architecture is farther than any change of rates.
ARCHITECTURE_DISTANCE = 100.0
RECIPE_NAMES = ("learning_rate", "weight_decay", "batch_size")
HOMEWORK_GRID = {
    "learning_rate": [4e-4, 5e-4, 6e-4],
    "weight_decay": [1.3e-3, 1.5e-3, 1.7e-3],
    "batch_size": [50, 100],
}
TUNING_DIR = "tuning"


def screen_space(epochs: int) -> keras_tuner.HyperParameters:
    """Stage 1's space: everything `build_model` and `fit` read, `epochs` fixed."""
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, MAX_DEPTH)
    for index in range(1, MAX_DEPTH + 1):
        hp.Choice(f"units_{index}", list(SCREEN_UNITS))
        hp.Choice(f"activation_{index}", list(SCREEN_ACTIVATIONS))
    hp.Float("learning_rate", *SCREEN_RATE_RANGE, sampling="log")
    hp.Float("weight_decay", *SCREEN_DECAY_RANGE, sampling="log")
    hp.Choice("batch_size", list(SCREEN_BATCH_SIZES))
    hp.Fixed("epochs", epochs)
    return hp


def architecture(values: dict) -> dict:
    """The architecture hyperparameters of a trial's values (active layers only)."""
    depth = values["depth"]
    names = ["depth"] + [f"{kind}_{index}" for index in range(1, depth + 1)
                         for kind in ("units", "activation")]
    return {name: values[name] for name in names}


def config_values(config: RegressionConfig) -> dict:
    """A configuration as the hyperparameter values of a trial."""
    values = {"depth": len(config.units), "learning_rate": config.learning_rate,
              "weight_decay": config.weight_decay, "batch_size": config.batch_size}
    for index, (units, activation) in enumerate(zip(config.units, config.activations), 1):
        values[f"units_{index}"] = units
        values[f"activation_{index}"] = activation
    return values


def config_from_values(config: RegressionConfig, values: dict) -> RegressionConfig:
    """`config` with a trial's architecture, rates and batch size."""
    depth = values["depth"]
    return dataclasses.replace(
        config,
        units=tuple(values[f"units_{index}"] for index in range(1, depth + 1)),
        activations=tuple(values[f"activation_{index}"] for index in range(1, depth + 1)),
        learning_rate=float(values["learning_rate"]),
        weight_decay=float(values["weight_decay"]),
        batch_size=int(values["batch_size"]),
    )


def grid_values(center: dict, homework: bool, refine: bool = True) -> dict[str, list]:
    """Stage 2's grid: the homework's, or rates and decays around `center`.

    Args:
        center: The values to centre on (the screen's winner); its batch size
            is kept.
        homework: Return the homework's grid instead.
        refine: Vary the rate and decay by `GRID_FACTORS`; False: `center`'s only.
    """
    if homework:
        return {name: list(values) for name, values in HOMEWORK_GRID.items()}
    factors = GRID_FACTORS if refine else (1.0,)

    def around(value):
        return sorted({float(f"{value * factor:.3g}") for factor in factors})

    return {
        "learning_rate": around(center["learning_rate"]),
        "weight_decay": around(center["weight_decay"]),
        "batch_size": [int(center["batch_size"])],
    }


def _log_ratio(value: float, reference: float) -> float:
    """|log(value / reference)|, with 0 against 0 the same and 0 against more far."""
    if value == reference:
        return 0.0
    if value <= 0 or reference <= 0:
        return ARCHITECTURE_DISTANCE / 10
    return abs(math.log(value / reference))


def distance(values: dict, base: dict) -> float:
    """How far a configuration's values are from `base`'s (0: the same recipe).

    Another architecture counts `ARCHITECTURE_DISTANCE`; rates, decay and
    batch size add how many e-fold they differ.
    """
    far = 0.0 if architecture(values) == architecture(base) else ARCHITECTURE_DISTANCE
    return far + sum(_log_ratio(float(values[name]), float(base[name]))
                     for name in RECIPE_NAMES)


def grid_space(center: dict, grid: dict[str, list], epochs: int) -> keras_tuner.HyperParameters:
    """Stage 2's space: `center`'s architecture fixed, `grid`'s values to visit.

    Raises:
        InputError: a hyperparameter of the grid has no values.
    """
    hp = keras_tuner.HyperParameters()
    for name, values in architecture(center).items():
        hp.Fixed(name, values)
    for name, values in grid.items():
        if not values:
            raise InputError(f"the grid has no values for {name}; give at least one")
        hp.Choice(name, list(values))
    hp.Fixed("epochs", epochs)
    return hp


def architecture_label(values: dict) -> str:
    """A configuration's hidden layers, e.g. "units 16,64 selu,sigmoid"."""
    depth = values["depth"]
    units = ",".join(str(values[f"units_{i}"]) for i in range(1, depth + 1))
    activations = ",".join(values[f"activation_{i}"] for i in range(1, depth + 1))
    return f"units {units} {activations}"


def grid_label(values: dict) -> str:
    """A configuration's rates and batch size."""
    return (f"lr {values['learning_rate']:.3g}  wd {values['weight_decay']:.3g}  "
            f"batch {values['batch_size']}")


def describe(values: dict) -> str:
    """A configuration in one short line."""
    return f"{architecture_label(values)}  {grid_label(values)}"


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
    cv: str = "interior"  # How the folds are made (`tuning.kfold.cv_folds`).


def _search(stage: Stage, index: int, config: RegressionConfig, train, project_root: Path,
            port: int | None, jit_compile: bool | str = "auto"):
    """Runs (or resumes, or serves, or works on) one stage; returns its tuner.

    `jit_compile`: the trials' XLA setting; "auto" compiles only trials long
    enough to repay the compilation (`AUTO_JIT_MIN_STEPS`).
    """
    print(f"stage {index + 1} ({stage.name}): {plural(stage.max_trials, 'configuration')} x "
          f"{stage.folds}-fold CV, {stage.epochs} epochs each", flush=True)
    with distributed.stage_port(index, port):
        with resume.reading_state(project_root / stage.name):
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
                directory=str(project_root),
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


def _candidates(stages, base: dict) -> tuple[list[dict], str | None]:
    """The final candidates (the baseline's and the grid's trials) and the baseline's id.

    Trial ids get their stage's name in front (`grid/03`), as two stages number
    their trials alike.
    """
    candidates, baseline_id = [], None
    for stage, tuner in stages:
        if stage.name == "screen":
            continue
        for record in report.trial_records(tuner.oracle, stage.folds):
            record = {**record, "trial_id": f"{stage.name}/{record['trial_id']}"}
            candidates.append(record)
            if baseline_id is None and distance(record["hyperparameters"], base) == 0:
                baseline_id = record["trial_id"]
    return candidates, baseline_id


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
    role = distributed.role()
    port = distributed.base_port()
    screen_epochs = max(1, config.epochs // SCREEN_EPOCH_DIVISOR)
    base = center = config_values(config)
    # --ensemble changes only the final training: a rerun with another resumes.
    identity = {"search": settings.identity(),
                "config": {k: v for k, v in to_dict(config).items() if k != "ensemble"}}
    out = Path(out) if out else distributed.default_out("regression-tune", role, RUNS_ROOT)
    resuming = resume.check_resumable(out / TUNING_DIR, identity, settings.fresh)
    run_dir = make_run_dir(str(out), "regression-tune")
    tuning_dir = resume.open_search_dir(run_dir / TUNING_DIR, identity, settings.fresh)
    print(f"regression --tune: {len(train)} training points, {settings.cv} folds -> {run_dir}"
          + (" (resuming its search; --fresh starts over)" if resuming else "")
          + ("" if role == "single" else f"  ({role}, oracle port {port} + stage)"))

    stages = []

    def run_stage(stage: Stage):
        tuner = _search(stage, len(stages), config, train, tuning_dir, port, trial_jit)
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
        print("worker done; the chief trains and exports the winner")
        return {"run_dir": str(run_dir)}

    summary = _write_report(stages, base, run_dir, started)
    choice = summary["choice"]
    winner = choice["winner"]
    print(f"chosen: val_mse {winner['mean']:.4g} ± {winner['std']:.2g} over "
          f"{settings.folds} folds, {describe(winner['hyperparameters'])}: "
          f"{choice['reason']}; training it on all {len(train)} points", flush=True)
    return train_and_export(config_from_values(config, winner["hyperparameters"]), run_dir,
                            data, started=started, runtime=runtime, extra={"tuning": {
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


def _write_report(stages, base: dict, run_dir: Path, started: float) -> dict:
    """Writes `tuning.json` and `tuning.png`; returns the JSON's content.

    Raises:
        InputError: no final candidate completed.
    """
    summary = {"objective": OBJECTIVE.name, "stages": []}
    for stage, tuner in stages:
        records = report.trial_records(tuner.oracle, stage.folds)
        summary["stages"].append({
            "name": stage.name, "search": stage.tuner_class.__name__, "folds": stage.folds,
            "epochs": stage.epochs, "cv": stage.cv, "trials": records,
            "best": report.best_record(records),
        })
    candidates, baseline_id = _candidates(stages, base)
    try:
        choice = select.one_standard_error(
            candidates, baseline_id, lambda record: distance(record["hyperparameters"], base))
    except ValueError:
        raise InputError("every grid trial failed (see the lines above); nothing to "
                         "train") from None
    summary["choice"] = {
        "rule": "one standard error of paired fold differences; the closest to the run's "
                "own configuration among those within it of the best",
        "winner": choice["winner"]["trial_id"], "best": choice["best"]["trial_id"],
        "baseline": baseline_id, "within_noise": choice["within_noise"],
        "margin": choice["margin"], "standard_error": choice["standard_error"],
        "reason": choice["reason"],
    }
    summary["winner"] = choice["winner"]
    summary["seconds"] = time.perf_counter() - started
    write_json(run_dir / "tuning.json", summary)
    several = len({str(architecture(r["hyperparameters"])) for r in candidates}) > 1
    report.plot_scores(
        candidates, run_dir / "tuning.png", objective=OBJECTIVE.name,
        label=describe if several else grid_label,
        title=f"Final candidates, {stages[-1][0].folds}-fold {stages[-1][0].cv} CV"
              + ("" if several else f", {architecture_label(candidates[0]['hyperparameters'])}"),
    )
    return {**summary, "choice": choice}
