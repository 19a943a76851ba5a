"""A failed write into a run folder, told in one line: which folder, why, how to finish.

Only the run folder's failures are the user's to fix there (a full disk, a
file system gone read-only, a folder made unwritable); the CLI
(`hw1_keras.process`) asks `write_failure` about every `OSError` and lets any
other error through as it is.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from hw1_keras import runs

# A file system with less free space than this, after a write into it failed
# without saying which file, counts as full: a run's largest files, the
# checkpoints and exports of a 100M-parameter network, take about 400 MB.
LOW_SPACE = 64 * 2**20

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
        runs.probe(Path(folder))
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
