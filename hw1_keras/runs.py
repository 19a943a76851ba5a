"""Run folders: where each run's metrics, plots, configuration and model land."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hw1_keras.errors import InputError

RUNS_ROOT = Path("runs")


def make_run_dir(out: str | None, task: str) -> Path:
    """Creates (or reuses) the run folder.

    Args:
        out: The folder the user named with `--out`, or None for a new
            time-stamped folder `runs/<task>-YYYYmmdd-HHMMSS`.
        task: The task name, used in the default folder name.

    Returns:
        The folder, created.

    Raises:
        InputError: `out` exists and is not a folder, or cannot be created.
    """
    path = Path(out) if out else RUNS_ROOT / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path}: exists and is not a folder; name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {path}: cannot create the folder ({error.strerror}); "
                         "name a folder you can write to") from None
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Writes JSON atomically: a crash mid-write never leaves a truncated file."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def read_json(path: str | Path) -> Any:
    """Reads a JSON file written by `write_json`."""
    return json.loads(Path(path).read_text())
