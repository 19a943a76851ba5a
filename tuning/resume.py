"""A search's folder in a run folder: resumed by default, never mixed with another search.

KerasTuner reloads a project folder and continues from its finished trials;
what it cannot tell is whether the trials there were made with the same data,
epochs and space. Each search therefore records what makes it itself (its
"identity", a JSON-ready dict) in `search.json`, and a rerun with other
settings is refused rather than mixed in.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from hw1_keras.errors import InputError
from hw1_keras.rerun import describe_changes, read_settings, same_task
from hw1_keras.runs import write_json

IDENTITY_FILE = "search.json"


def check_resumable(tuning_dir: Path, identity: dict, fresh: bool) -> bool:
    """Whether `tuning_dir` holds a search to resume; refuses one made otherwise.

    Touches nothing, so it can run before the run folder is made. `fresh`
    allows starting over a search made with other settings, never writing
    into a folder that holds no search, or another task's search.

    Raises:
        InputError: `tuning_dir` holds a search with another identity
            (unless `fresh`) or of another task, or its run folder holds
            files but no search.
    """
    saved = tuning_dir / IDENTITY_FILE
    if not saved.is_file():
        out = tuning_dir.parent
        if out.is_dir() and any(out.iterdir()):
            raise InputError(f"--out {out}: is not empty and holds no search (no "
                             f"{tuning_dir.name}/{IDENTITY_FILE}); pass another --out")
        return False
    before = read_settings(tuning_dir.parent, saved, "a search's record")
    if not same_task(before, identity):
        raise InputError(f"--out {tuning_dir.parent}: holds a search of another task; "
                         "pass another --out")
    if fresh:
        return False
    if before != identity:
        raise InputError(
            f"--out {tuning_dir.parent}: holds a search with other settings "
            f"({describe_changes(before, identity)}); rerun with the same flags to resume "
            "it, add --fresh to start over, or pass another --out")
    return True


def open_search_dir(tuning_dir: Path, identity: dict, fresh: bool) -> Path:
    """Creates `tuning_dir` (emptied first when `fresh`) and records `identity` in it."""
    if fresh:
        shutil.rmtree(tuning_dir, ignore_errors=True)
    tuning_dir.mkdir(parents=True, exist_ok=True)
    write_json(tuning_dir / IDENTITY_FILE, identity)
    return tuning_dir


@contextlib.contextmanager
def reading_state(project_dir: Path):
    """Around building a tuner that reloads `project_dir`: damaged state is one clear error.

    KerasTuner writes `oracle.json` and each `trial.json` in place, so a kill
    or a power cut in the middle of a write leaves one empty or cut off, and
    reloading it would end in a JSON traceback. Nothing is deleted here: the
    user chooses between `--fresh` and another `--out`.

    Raises:
        InputError: a state file could not be read back.
    """
    try:
        yield
    except InputError:
        raise
    except (ValueError, KeyError) as error:  # json.JSONDecodeError is a ValueError.
        raise InputError(
            f"--out {project_dir.parent.parent}: the search state in {project_dir} is "
            f"damaged ({type(error).__name__}: {error}); rerun with --fresh to start over, "
            "or pass another --out") from None
