"""What a k-fold search leaves in the run folder: `tuning.json` and `tuning.png`.

`write_report` is also where `regression --tune` makes its choice among the
final candidates (`tuning.select`), as the report records it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hw1_keras import plots
from hw1_keras.errors import InputError
from hw1_keras.runs import write_json
from tuning import select
from tuning.regression_space import architecture, architecture_label, describe, distance, grid_label


def trial_records(oracle, folds: int) -> list[dict]:
    """Every trial of a search, in start order, from its oracle.

    Each record: `trial_id`, `status`, `hyperparameters`, and for completed
    trials `fold_scores`, `mean`, `std`, `seconds` (training time of all folds)
    as `CrossValidated.run_trial` reported them; failed ones get `message`.
    """
    name = oracle.objective.name
    records = []
    for trial_id in sorted(oracle.trials, key=int):  # Numbered as started; widths may differ.
        trial = oracle.trials[trial_id]
        record = {"trial_id": trial_id, "status": trial.status,
                  "hyperparameters": dict(trial.hyperparameters.values)}
        if trial.metrics.exists(name):
            last = trial.metrics.get_last_value
            record.update(
                fold_scores=[last(f"{name}_fold_{fold}") for fold in range(folds)],
                mean=last(name), std=last(f"{name}_std"), seconds=last("seconds"),
            )
        elif trial.message:
            record["message"] = trial.message.strip().splitlines()[-1]
        records.append(record)
    return records


def best_record(records: list[dict]) -> dict | None:
    """The completed record with the lowest mean, or None."""
    done = [record for record in records if "mean" in record]
    return min(done, key=lambda record: record["mean"]) if done else None


def plot_scores(records: list[dict], path: str | Path, *, objective: str, label, title: str
                ) -> Path:
    """Each configuration's mean score with its fold spread, best first.

    Args:
        records: `trial_records` of one search.
        path: The PNG to write.
        objective: The score's name, for the axis.
        label: Maps a record's hyperparameters to its short label.
        title: The figure title.
    """
    done = sorted((r for r in records if "mean" in r), key=lambda r: r["mean"])
    figure, axes = plots.plt.subplots(figsize=(8, 1.2 + 0.32 * max(1, len(done))))
    for row, record in enumerate(done):
        scores = np.asarray(record["fold_scores"])
        axes.scatter(scores, np.full(len(scores), row), s=12, color="0.55", zorder=2,
                     label="each fold's best" if row == 0 else None)
        axes.errorbar(record["mean"], row, xerr=record["std"], fmt="o", capsize=3,
                      color="crimson" if row == 0 else "tab:blue", zorder=3,
                      label="mean ± std over folds" if row == 0 else None)
    axes.set_yticks(range(len(done)), [label(r["hyperparameters"]) for r in done],
                    fontsize="small")
    axes.invert_yaxis()  # Best at the top.
    axes.set_xlabel(f"{objective} (per fold: the best over its epochs)")
    axes.set_title(title)
    axes.grid(alpha=0.3, axis="x")
    if done:
        # Below the axes: any corner inside may hide a configuration's points.
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.09),
                    ncol=2, frameon=False)
    return plots.save(figure, path)


def final_candidates(stages, base: dict) -> tuple[list[dict], str | None]:
    """The final candidates (the baseline's and the grid's trials) and the baseline's id.

    Trial ids get their stage's name in front (`grid/03`), as two stages number
    their trials alike.
    """
    candidates, baseline_id = [], None
    for stage, tuner in stages:
        if stage.name == "screen":
            continue
        for record in trial_records(tuner.oracle, stage.folds):
            record = {**record, "trial_id": f"{stage.name}/{record['trial_id']}"}
            candidates.append(record)
            if baseline_id is None and distance(record["hyperparameters"], base) == 0:
                baseline_id = record["trial_id"]
    return candidates, baseline_id


def write_report(stages, base: dict, run_dir: Path, started: float) -> dict:
    """Chooses among the final candidates, then writes `tuning.json` and `tuning.png`.

    Args:
        stages: `(Stage, tuner)` per stage run, in order.
        base: The run's own configuration's values (`config_values`).
        run_dir: The run folder.
        started: `time.perf_counter()` at the search's start.

    Returns:
        The JSON's content, with `choice` as `select` gave it.

    Raises:
        InputError: no final candidate completed.
    """
    objective = stages[-1][1].oracle.objective.name
    summary = {"objective": objective, "stages": []}
    for stage, tuner in stages:
        records = trial_records(tuner.oracle, stage.folds)
        summary["stages"].append({
            "name": stage.name, "search": stage.tuner_class.__name__, "folds": stage.folds,
            "epochs": stage.epochs, "cv": stage.cv, "trials": records,
            "best": best_record(records),
        })
    candidates, baseline_id = final_candidates(stages, base)
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
    plot_scores(
        candidates, run_dir / "tuning.png", objective=objective,
        label=describe if several else grid_label,
        title=f"Final candidates, {stages[-1][0].folds}-fold {stages[-1][0].cv} CV"
              + ("" if several else f", {architecture_label(candidates[0]['hyperparameters'])}"),
    )
    return {**summary, "choice": choice}
