"""What every benchmark shares: its result rows and the timed `run.py` commands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hw1_keras.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent


def row(label: str, value: str, width: int = 52) -> None:
    """Prints one result row, aligned, at once (benchmarks run for minutes)."""
    print(f"  {label:<{width}} {value}", flush=True)


def last_line(text: str) -> str:
    """A failed command's last non-blank line of output, for a one-line error."""
    return ([line for line in text.splitlines() if line.strip()] or ["no output"])[-1]


def run_py_command(arguments: list[str]) -> list[str]:
    """`python run.py ARGUMENTS` as a command line, for this interpreter and checkout."""
    return [sys.executable, str(REPO_ROOT / "run.py"), *map(str, arguments)]


def run_py(arguments: list[str], **popen) -> float:
    """`python run.py ARGUMENTS` in a fresh process, to its end; its wall seconds.

    Every benchmark that times a whole command runs it through here. The
    child's stderr is held back: should it fail, its last line (a `run.py`
    error is one line) becomes the benchmark's own one-line error, instead of
    the child's line followed by our traceback.

    Args:
        arguments: The command line after `run.py`.
        **popen: Passed on to `subprocess.run` (e.g. `stdout=subprocess.DEVNULL`).

    Raises:
        InputError: The command exited with a nonzero status.
    """
    start = time.perf_counter()
    result = subprocess.run(run_py_command(arguments),
                            stderr=subprocess.PIPE, text=True, **popen)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        last = last_line(result.stderr)
        raise InputError(f"the benchmark's run.py {' '.join(arguments)} exited with "
                         f"{result.returncode}: {last}")
    return seconds
