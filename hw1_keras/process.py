"""The command as a process: TensorFlow imported quietly, every failure in one line.

`run(command, body)` runs a parsed command and turns what can go wrong into
an exit status and one line on stderr: bad input (`InputError`), Ctrl-C, and
failures of the machine rather than the program (a full disk, a read-only
folder, memory running out). Anything else is a bug, for its traceback.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
from typing import Callable

from hw1_keras import runs, write_errors
from hw1_keras.errors import InputError, one_line
from hw1_keras.text import PROG

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow without its C++ start-up chatter on stderr.

    On machines without a GPU, TensorFlow prints CUDA-probing lines before any
    logging setting applies, which would bury our one-line errors. Users who
    set TF_CPP_MIN_LOG_LEVEL themselves see everything, as TensorFlow prints it.
    The value set here is marked as ours, since the `run.py` processes a
    benchmark starts inherit it and must not take it for the user's.
    """
    ours = "HW1_KERAS_QUIETED_TF"
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and ours not in os.environ:
        import tensorflow  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[ours] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def environment_error(error: BaseException, command: str) -> str | None:
    """The one-line message for a failure of the machine rather than the program.

    A failed write into the run folder (a full disk, a file system gone
    read-only: `hw1_keras.write_errors`), or memory running out
    (`MemoryError`, TensorFlow's `ResourceExhaustedError`). Any other error,
    an `OSError` about another file included, is None: a bug or a cause this
    program cannot name, for its traceback.
    """
    tensorflow = sys.modules.get("tensorflow")
    errors = getattr(tensorflow, "errors", None)
    if isinstance(error, OSError) or (errors is not None and isinstance(error, errors.OpError)):
        message = write_errors.write_failure(error, runs.opened_run_dirs())
        if message is not None:
            return message
    if isinstance(error, MemoryError) or (
            errors is not None and isinstance(error, errors.ResourceExhaustedError)):
        detail = OUT_OF_MEMORY.search(str(error))
        sizes = NETWORK_FLAGS.get(command, "a smaller network")
        return (f"out of memory ({detail.group(0) if detail else type(error).__name__}); "
                f"try {sizes} or a smaller --batch-size")
    return None


# What TensorFlow and NumPy say about the allocation that failed.
OUT_OF_MEMORY = re.compile(r"OOM when allocating tensor with shape\[[^\]]*\]|"
                           r"Unable to allocate [^ ]+ [KMGTP]?i?B")
NETWORK_FLAGS = {"regression": "fewer or narrower --units",
                 "mnist": "fewer --filters or --dense-units"}


def run(command: str, body: Callable[[], int]) -> int:
    """`body()`'s exit status, or 2 with one line for bad input or a failing machine.

    Args:
        command: The subcommand, for the message (`run.py COMMAND: error: ...`).
        body: Runs the command; returns its exit status.
    """
    runs.forget_run_dirs()
    with _reported_once():
        return _guarded(command, body)


def _guarded(command: str, body: Callable[[], int]) -> int:
    machine = False
    try:
        return body()
    except InputError as error:
        message = str(error)
    except KeyboardInterrupt:
        runs.discard_empty_run_dirs()
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        runs.discard_empty_run_dirs()
        message = environment_error(error, command)
        if message is None:
            raise
        machine = True
    if machine:  # The error and its frames are gone: files whose writes failed close now.
        gc.collect()
    runs.discard_empty_run_dirs()  # A run that failed leaves no empty folder behind.
    print(one_line(f"{PROG} {command}: error: {message}"), file=sys.stderr)
    return EXIT_BAD_INPUT


@contextlib.contextmanager
def _reported_once():
    """Keeps a failed write into the run folder from being reported twice.

    h5py reports it again, with a traceback, when the file it could not
    write is closed: its destructor prints the exception (through
    `sys.excepthook`) and then Python's "Exception ignored in" (through
    `sys.unraisablehook`). `main` reports it in one line; these repeats of it
    are dropped, and anything else is printed as Python would.
    """
    excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

    def ours(error) -> bool:
        return isinstance(error, OSError) and write_errors.write_failure(
            error, runs.opened_run_dirs()) is not None

    sys.excepthook = lambda kind, error, trace: (
        None if ours(error) else excepthook(kind, error, trace))
    sys.unraisablehook = lambda unraisable: (
        None if ours(unraisable.exc_value) else unraisablehook(unraisable))
    try:
        yield
    finally:
        sys.excepthook, sys.unraisablehook = excepthook, unraisablehook
