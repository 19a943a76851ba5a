"""Run folders: where each run's metrics, plots, configuration and model land.

A run folder holds a finished run once its `metrics.json` is there: every
task writes it last, atomically. Before a run trains, its folder is known to
take files (`make_run_dir` writes and removes a probe file); a write that
fails later (a full disk, a file system gone read-only) is one line naming
the folder and the cause (`hw1_keras.write_errors`), and leaves the folder unfinished,
for the same command to finish once the cause is fixed.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from hw1_keras.errors import InputError

RUNS_ROOT = Path("runs")
FINISHED = "metrics.json"  # Written last: a folder holding it holds a finished run.
PROBE_BYTES = b"hw1-keras: can this folder take files?\n"
# The run folders this process opened (`make_run_dir`), each with whether it
# created it: where the CLI looks when a write fails, and what it tidies up.
_opened: dict[Path, bool] = {}


def make_run_dir(out: str | None, task: str) -> Path:
    """Creates (or reuses) the run folder.

    Args:
        out: The folder the user named with `--out`, or None for a new
            time-stamped folder `runs/<task>-YYYYmmdd-HHMMSS` (with `-2`, `-3`,
            ... added when runs start in the same second, so that two runs
            never share a folder).
        task: The task name, used in the default folder name.

    Returns:
        The folder, created.

    Raises:
        InputError: `out` is empty, exists and is not a folder, or cannot be
            created.
    """
    if out is not None and not out.strip():
        # Not the default folder: the user meant to name one and did not.
        raise InputError(f"--out got {out!r}; expected a folder's path, or omit --out "
                         "for a new folder under runs/")
    path = Path(out) if out else RUNS_ROOT / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    existed = _is_folder(path)
    try:
        path = _new_dir(path) if not out else _mkdir(path)
    except OSError as error:
        raise InputError(f"--out {path}: cannot create the folder ({error.strerror}); "
                         "name a folder you can write to") from None
    try:
        probe(path)
    except OSError as error:
        if not existed:
            path.rmdir()  # Created just now, and empty.
        raise InputError(f"--out {path}: cannot write in the folder ({error.strerror}); "
                         "name a folder you can write to") from None
    _opened[path] = not existed
    return path


def check_out(out: str | None) -> None:
    """Refuses an `--out` the run could not write to, touching nothing there.

    For the CLI to call before it imports TensorFlow: the folder, or the
    nearest folder above it that exists (where it would be created; `runs/`
    for the default), must take a probe file (`probe`).

    Raises:
        InputError: As `make_run_dir` would, later.
    """
    if out is not None and not out.strip():
        return  # make_run_dir's own message.
    path = Path(out) if out else RUNS_ROOT
    _is_folder(path)
    above = path
    while not _exists(above) and above != above.parent:
        above = above.parent
    what = "" if above == path else f" in {above}, where it would be created"
    try:
        if not above.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        probe(above.absolute())
    except OSError as error:
        verb = "create the folder" if above != path else "write in the folder"
        raise InputError(f"--out {path}: cannot {verb} ({error.strerror}{what}); "
                         "name a folder you can write to") from None


def _is_folder(path: Path) -> bool:
    """Whether `--out` names a folder (False: nothing there yet).

    Raises:
        InputError: Something other than a folder is there, or the path
            cannot be looked up at all (a name too long, a loop of links).
    """
    if not _exists(path):
        return False
    if not path.is_dir():
        raise InputError(f"--out {path}: exists and is not a folder; name a folder")
    return True


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        raise InputError(f"--out {path}: cannot be used ({error.strerror}); name a folder "
                         "you can write to") from None
    return True


def probe(folder: Path) -> None:
    """Writes, flushes and removes a small file in `folder`.

    Raises:
        OSError: The folder takes no files: a read-only file system, a folder
            made immutable (`chattr +i`) or not writable to this user, a full
            disk.
    """
    path = folder / f".hw1-keras-probe-{os.getpid()}"
    try:
        with open(path, "wb") as handle:
            handle.write(PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())  # A full disk may only say so here.
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _new_dir(stem: Path) -> Path:
    """Creates a folder that did not exist: `stem`, else `stem-2`, `stem-3`, ..."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        path = stem if number == 1 else stem.with_name(f"{stem.name}-{number}")
        try:
            path.mkdir()  # Atomic: of two runs racing for one name, one gets it.
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def write_json(path: str | Path, data: Any) -> None:
    """Writes JSON atomically: a crash mid-write never leaves a truncated file."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Writes `text` as it is (line ends untranslated), atomically: beside
    `path` first, then renamed over it.

    Raises:
        OSError: The write failed (the partial file is removed), naming `path`.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", newline="") as handle:
            handle.write(text)
        os.replace(partial, path)
    except OSError as error:
        try:
            partial.unlink()
        except OSError:
            pass
        if error.filename is None:  # A write or close: say where.
            error.filename = str(path)
        raise


def read_json(path: str | Path) -> Any:
    """Reads a JSON file written by `write_json`."""
    return json.loads(Path(path).read_text())


def begin_results(run_dir: Path, config: dict) -> None:
    """Marks `run_dir` as holding an unfinished run of `config`, before its results.

    Its `config.json` first, so that a rerun recognizes a run whose results
    were cut short (a full disk) as its own, and any earlier `metrics.json`
    goes, so that a folder of half-replaced files is not taken for a finished run.
    """
    try:
        (run_dir / FINISHED).unlink()
    except FileNotFoundError:
        pass
    write_json(run_dir / "config.json", config)


def opened_run_dirs() -> dict[Path, bool]:
    """The run folders this process opened, each with whether it created it."""
    return dict(_opened)


def forget_run_dirs() -> None:
    """Starts a new command: no run folder opened yet."""
    _opened.clear()


def discard_empty_run_dirs() -> None:
    """Removes the folders this process created that are still empty (a failed run)."""
    for path, created in _opened.items():
        if created:
            try:
                path.rmdir()
            except OSError:  # Not empty (or gone): kept.
                pass
