"""Run folders: where each run's metrics, plots, configuration and model land.

A run folder holds a finished run once its `metrics.json` is there: every
task writes it last, atomically. Before a run trains, its folder is known to
take files (`make_run_dir` writes and removes a probe file); a write that
fails later (a full disk, a file system gone read-only) is one line naming
the folder and the cause (`write_failure`), and leaves the folder unfinished,
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
# A file system with less free space than this, after a write into it failed
# without saying which file, counts as full: a run's largest files, the
# checkpoints and exports of a 100M-parameter network, take about 400 MB.
LOW_SPACE = 64 * 2**20
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


# Why a write into a run folder fails, as errno numbers: found in the messages
# of errors that carry none (TensorFlow's).
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.EFBIG, errno.EIO)
SPACE_ERRORS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def write_failure(error: BaseException, folders) -> str | None:
    """The one-line message for `error` if it is a failed write into a run folder.

    Only the run folder's failures are the user's to fix there; any other
    error gets None, for the caller to raise as it is. An error is the run
    folder's when it names a file inside one (`OSError.filename`, or the
    folder's path in its message, as TensorFlow and h5py put it), or, naming
    no file at all (Python's buffered writes, PIL, NumPy), when the folder now
    fails a probe write or its file system is (nearly) full.

    Args:
        error: An `OSError`, or what TensorFlow raises for file operations.
        folders: The run folders in use (`opened_run_dirs`).
    """
    named = [name for name in (getattr(error, "filename", None),
                               getattr(error, "filename2", None))
             if isinstance(name, (str, bytes, os.PathLike))]
    text = str(error)
    for folder in folders:
        absolute = os.path.abspath(folder)
        if named:
            inside = [name for name in named if _inside(os.fsdecode(name), absolute)]
            if inside:
                return _write_message(folder, _cause(error) or "failed", inside[0])
            continue
        if absolute + os.sep in text or text.endswith(absolute):
            return _write_message(folder, _cause(error) or _state(folder, True) or "failed")
        if isinstance(error, OSError):
            cause = _cause(error)
            state = _state(folder, full=cause in (None, *SPACE_ERRORS))
            if state:
                return _write_message(folder, cause or state)
    return None


def _inside(name: str, folder: str) -> bool:
    name = os.path.abspath(name)
    return name == folder or name.startswith(folder + os.sep)


def _cause(error: BaseException) -> str | None:
    """The error's cause in os.strerror's words, when it gives one."""
    number = getattr(error, "errno", None)
    if isinstance(number, int) and number:
        return os.strerror(number)
    text = str(error)
    return next((os.strerror(number) for number in WRITE_ERRORS
                 if os.strerror(number) in text), None)


def _state(folder: Path, full: bool) -> str | None:
    """Why `folder` takes no more files now, or None when it does.

    `full`: also count a file system with under `LOW_SPACE` free as full (a
    probe's few bytes may still fit where the failed write's did not).
    """
    try:
        probe(Path(folder))
    except OSError as error:
        return error.strerror or type(error).__name__
    if not full:
        return None
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if stats.f_bavail * stats.f_frsize < LOW_SPACE else None


def _write_message(folder: Path, cause: str, name: str | None = None) -> str:
    inside = name is not None and os.path.abspath(name) != os.path.abspath(folder)
    what = os.path.relpath(os.path.abspath(name), os.path.abspath(folder)) if inside \
        else "the results"
    fix = "free some space" if cause in SPACE_ERRORS else (
        "make its file system writable" if cause == os.strerror(errno.EROFS)
        else "make the folder writable")
    return (f"--out {folder}: could not write {what} ({cause}); the run is not finished: "
            f"{fix}, then rerun the same command to finish it")
