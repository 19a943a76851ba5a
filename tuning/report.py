"""What a k-fold search leaves in the run folder: `tuning.json` and `tuning.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw1_keras import plots


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
