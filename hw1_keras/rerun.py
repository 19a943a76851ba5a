"""Whether a run folder takes this run: the settings it holds against the run's own.

Before anything is written, a command compares the folder's `config.json`
(or a search's `tuning/search.json`) with its own resolved settings: a new
or empty folder, or one holding the same settings (a rerun, a resume), takes
the run; anything else is refused in one line naming what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hw1_keras.errors import InputError
from hw1_keras.runs import read_json

# Where a `--tune` run folder records its search (`tuning.resume`, `TUNING_DIR`).
SEARCH_RECORD = Path("tuning") / "search.json"


def check_run_dir(run_dir: Path, config: dict, interrupted: bool = False,
                  search: bool = False, presets: dict[str, dict] | None = None) -> None:
    """Refuses to write a run into a folder that holds a different one.

    Touches nothing. A folder may take the run if it is empty, or if its
    `config.json` records the same settings (a rerun, or the resume of an
    interrupted run). Anything else would mix two runs' files: a run of
    another task, another seed, or files that are no run at all.

    Args:
        run_dir: The run folder.
        config: The run's resolved configuration (`hw1_keras.config.to_dict`).
        interrupted: The folder holds an interrupted run this one would
            resume; only changes the advice.
        search: The run is a search's winner, trained in the search's folder.
        presets: Flags that set several fields at once, each with the fields
            it sets (`{"--quick": {"epochs": 3, ...}}`): when one flag given
            or left out explains the whole difference, the advice names it.

    Raises:
        InputError: The folder holds something else, or a `config.json` that
            is no run's.
    """
    if not search and (run_dir / SEARCH_RECORD).is_file():
        # Its config.json is the winner's: comparing with it would only list
        # the settings the search chose.
        raise InputError(f"--out {run_dir}: holds a --tune search; add --tune (and that "
                         "search's flags) to resume or rerun it, or pass another --out")
    saved = run_dir / "config.json"
    if not saved.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise InputError(f"--out {run_dir}: is not empty and holds no run (no "
                             "config.json); name a new or empty folder")
        return
    before, now = read_settings(run_dir, saved), as_saved(config)
    if not same_task(before, now):
        raise InputError(f"--out {run_dir}: holds a run of another task; "
                         "pass another --out")
    changed = describe_changes(before, now)
    if not changed:
        return
    action = "resume" if interrupted else "rerun"
    for flag, fields in (presets or {}).items():
        fix = _preset_fix(before, now, as_saved(fields))
        if fix:
            raise InputError(f"--out {run_dir}: holds a run made {fix[0]} {flag} ({changed}); "
                             f"{fix[1]} {flag} to {action} it, or pass another --out")
    if interrupted:
        raise InputError(f"--out {run_dir}: holds an interrupted run with other settings "
                         f"({changed}); rerun it with its own flags to resume it, "
                         "or pass another --out")
    raise InputError(f"--out {run_dir}: holds a run with other settings ({changed}); "
                     "pass another --out, or delete that folder to replace its run")


def _preset_fix(before: dict, now: dict, fields: dict) -> tuple[str, str] | None:
    """("with", "add") or ("without", "drop") when a preset flag alone explains the change.

    `fields` are the ones the flag sets. It explains the change when only
    those fields differ, and on one side each of them
    holds the preset's value (a field given its own flag as well, like
    `--quick --epochs 5`, is equal on both sides and plays no part).
    """
    changed = {key for key in set(before) | set(now)
               if before.get(key, UNSET) != now.get(key, UNSET)}
    if not changed or not changed <= set(fields):
        return None
    if all(before.get(key, UNSET) == fields[key] for key in changed):
        return "with", "add"
    if all(now.get(key, UNSET) == fields[key] for key in changed):
        return "without", "drop"
    return None


def as_saved(config: dict) -> dict:
    """`config` as `config.json` gives it back (JSON's types: tuples are lists)."""
    return json.loads(json.dumps(config))


def changes_from_saved(run_dir: Path, config: dict) -> str | None:
    """What differs between the run `run_dir` holds and `config` ('' for nothing).

    None when the folder holds no `config.json`.

    Raises:
        InputError: Its `config.json` is damaged (`read_settings`).
    """
    saved = run_dir / "config.json"
    if not saved.is_file():
        return None
    return describe_changes(read_settings(run_dir, saved), as_saved(config))


def read_settings(run_dir: Path, saved: Path, what: str = "a run's config") -> dict:
    """The settings `saved` (a run folder's `config.json`, a search's identity) records.

    Raises:
        InputError: The file cannot be read, or is no run's configuration
            (damaged, not JSON, or JSON but no object of settings).
    """
    try:
        before = read_json(saved)
    except OSError as error:
        raise InputError(f"--out {run_dir}: {saved} cannot be read ({error.strerror}); "
                         "pass another --out") from None
    except UnicodeDecodeError:
        why = "not text"
    except json.JSONDecodeError as error:
        why = f"not valid JSON: {error.msg} at line {error.lineno}"
    else:
        if isinstance(before, dict) and before:
            return before
        why = "no settings" if isinstance(before, dict) else f"a JSON {_json_kind(before)}"
    raise InputError(f"--out {run_dir}: {saved} is not {what} ({why}); pass another --out")


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "number")


def same_task(before: dict, now: dict) -> bool:
    """Whether two run configurations (`to_dict`s) are of the same task.

    `config.json` names no task, so the fields tell: the tasks share only a
    few (seed, epochs, batch size, rates), so a run of another task differs in
    more fields than it shares, while the same task's run from an older or
    newer version gains or loses one or two.
    """
    return len(set(before) & set(now)) > len(set(before) ^ set(now))


def describe_changes(before: dict, now: dict, limit: int = 4) -> str:
    """What differs between two (nested) settings, as `key old -> new; ...`.

    Nested keys are joined with dots (`search.max_trials 2 -> 3`); after
    `limit` entries the rest are counted, so the message stays one short line.
    """
    changes = _changes(before, now)
    if len(changes) > limit:
        changes = changes[:limit] + [f"and {len(changes) - limit} more"]
    return "; ".join(changes)


def _changes(before: dict, now: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key, UNSET), now.get(key, UNSET)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _changes(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {_short(old)} -> {_short(new)}")
    return changes


UNSET = object()  # A key one side lacks.


def _short(value: Any) -> str:
    text = "unset" if value is UNSET else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
