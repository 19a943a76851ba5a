"""What `mnist --tune` decides and leaves in the run folder, read from its studies' trials.

`study_records` reads each trial from its oracle; `setting_results` hands them
to `tuning.mnist_combine.combine`; `summarize` makes `tuning.json`'s content
(every trial, each study's verdict, the check of the winners together, the
choice); `write_reports` writes it with `studies.md` and `studies/<study>.png`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from hw1_keras import plots
from hw1_keras.config import to_dict
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.runs import write_json
from hw1_keras.text import counted, plural
from tuning.mnist_combine import (NOISE_SES, Candidate, Paired, SettingResult, choose,
                                  paired_difference)
from tuning.mnist_settings import (BUDGET_RULE, COMBINED, Study, apply_setting,
                                   combination_study, setting_label, trial_budget)
from tuning.mnist_trial import (CORRECT_METRIC, OBJECTIVE, SETTLE_BATCH_SIZE, SETTLE_BATCHES,
                                config_key, correct_from_metrics)
from tuning.progress import trial_number

STUDIES_DIR = "studies"
SUMMARY = "studies.md"


def steps_line(config: MnistConfig, images: int, epochs: int) -> str:
    """The equal-budget rule in numbers, for the output and `studies.md`."""
    own = trial_budget(config, config, images, epochs)
    return (f"every setting {plural(epochs, 'epoch')}, at most the run's own "
            f"{counted(own.steps, 'optimizer step')} (batch {config.batch_size}) and "
            f"{counted(images, 'image')}; "
            f"a smaller batch trains on fewer images in as many steps, a larger one on these "
            f"in fewer; a batch b at peak learning rate {config.learning_rate:g} x "
            f"sqrt(b / {config.batch_size})")



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


def summarize(results, check_records, combination, config, settings, images,
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
