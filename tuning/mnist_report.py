"""What `mnist --tune` decides, read from its studies' trials: `tuning.json`'s content.

`study_records` reads each trial from its oracle; `setting_results` hands them
to `tuning.mnist_combine.combine`; `summarize` makes `tuning.json`'s content
(every trial, each study's verdict, the check of the winners together, the
choice). How it is written up (`studies.md`, the plots, the printed lines):
`tuning.mnist_writeup`.
"""

from __future__ import annotations

import time

from hw1_keras.config import to_dict
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.text import counted, plural
from tuning.mnist_combine import (NOISE_SES, Candidate, Paired, SettingResult, choose,
                                  paired_difference)
from tuning.mnist_settings import (BUDGET_RULE, COMBINED, Study, apply_setting,
                                   combination_study, setting_label, trial_budget)
from tuning.mnist_trial import CORRECT_METRIC, OBJECTIVE, config_key, correct_from_metrics
from tuning.progress import trial_number


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

    verdicts = [verdict_entry(v) for v in combination.verdicts]
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


def verdict_entry(verdict) -> dict:
    """A `tuning.mnist_combine.Verdict` as `tuning.json`'s `decision.verdicts` keep it."""
    return {"study": verdict.study, "setting": verdict.label, "value": verdict.value,
            "best": verdict.accuracy, **_paired_entry(verdict.paired),
            "seconds_ratio": verdict.seconds_ratio, "changed": verdict.changed,
            "reason": verdict.reason}
