"""A search's folder in a run folder: resumed by default, never mixed with another search.

KerasTuner reloads a project folder and continues from its finished trials;
what it cannot tell is whether the trials there were made with the same data,
epochs and space. Each search therefore records what makes it itself (its
"identity", a JSON-ready dict) in `search.json`, and a rerun with other
settings is refused rather than mixed in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hw1_keras.errors import InputError
from hw1_keras.runs import read_json, write_json

IDENTITY_FILE = "search.json"


def check_resumable(tuning_dir: Path, identity: dict, fresh: bool) -> bool:
    """Whether `tuning_dir` holds a search to resume; refuses one made otherwise.

    Touches nothing, so it can run before the run folder is made.

    Raises:
        InputError: `tuning_dir` holds a search with another identity (and
            `fresh` is not set).
    """
    saved = tuning_dir / IDENTITY_FILE
    if fresh or not saved.is_file():
        return False
    before = read_json(saved)
    if before != identity:
        changed = sorted(key for key in set(before) | set(identity)
                         if before.get(key) != identity.get(key))
        raise InputError(
            f"{tuning_dir.parent} holds a search with other settings ({', '.join(changed)} "
            "differ); rerun with the same flags to resume it, add --fresh to start over, "
            "or choose another --out")
    return True


def open_search_dir(tuning_dir: Path, identity: dict, fresh: bool) -> Path:
    """Creates `tuning_dir` (emptied first when `fresh`) and records `identity` in it."""
    if fresh:
        shutil.rmtree(tuning_dir, ignore_errors=True)
    tuning_dir.mkdir(parents=True, exist_ok=True)
    write_json(tuning_dir / IDENTITY_FILE, identity)
    return tuning_dir
