"""The write-up of `mnist --tune`: `studies.md`, one plot per study, the lines it prints.

Everything here reads the summary `tuning.mnist_report.summarize` made (as
`tuning.json` holds it), so the table, the plots and the printed verdicts
say the same.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hw1_keras import plots
from hw1_keras.runs import write_json
from hw1_keras.text import plural
from tuning.mnist_combine import NOISE_SES
from tuning.mnist_report import verdict_entry
from tuning.mnist_trial import SETTLE_BATCH_SIZE, SETTLE_BATCHES

STUDIES_DIR = "studies"
SUMMARY = "studies.md"


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
            + [f"  {verdict_text(verdict_entry(v))}" for v in combination.verdicts])


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


def write_reports(summary: dict, run_dir: Path) -> None:
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
