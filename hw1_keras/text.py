"""How messages read: counts, and the program's name."""

from __future__ import annotations

import os
import sys

# How the user called us, for usage lines and errors: `python run.py`, or the
# `hw1` command that `pip install .` makes.
PROG = "hw1" if os.path.basename(sys.argv[0]) == "hw1" else "run.py"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 column`, `3 columns`, `0 columns`; `many` where the plural is not `one` + s."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def counted(count: int, one: str) -> str:
    """`1 step`, `2,250 steps`: `plural` with thousands separated."""
    return f"{count:,} {one}{'s' * (count != 1)}"
