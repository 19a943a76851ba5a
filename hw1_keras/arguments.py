"""How the CLI reads its arguments: a parser whose errors are one line, and the flags' types.

Each type function checks one kind of value and, in the parser's one line,
says what was passed and what is expected.
"""

from __future__ import annotations

import argparse
import re

from hw1_keras import compat
from hw1_keras.config import MAX_COUNT
from hw1_keras.errors import one_line
from hw1_keras.process import EXIT_BAD_INPUT

# What starts a negative value, never a flag: a digit (-3, -1e-3, -5., a list
# -3,4), a point and a digit (-.5), or inf or nan as Python's float() reads
# them (-inf, -Infinity). argparse itself takes only -3 and -0.5 for numbers.
NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: what was wrong, then `--help`.

    A value that starts like a negative number is a value, never a flag, for
    every flag and positional argument: `--weight-decay -1e-3` and `--units
    -3,4` reach their flags' own checks (argparse alone would read `-1e-3` as
    an unknown flag and say that --weight-decay "expected one argument").
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        compat.read_negative_values(self, NEGATIVE_VALUE)  # Subparsers are OneLineParsers too.

    def error(self, message):
        self.exit(EXIT_BAD_INPUT,
                  one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports a subcommand's unknown flags from the top parser;
        # name the subcommand, whose --help lists the flags it does take.
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            self.exit(EXIT_BAD_INPUT, one_line(f"{prog}: error: unrecognized arguments: "
                                               f"{' '.join(unknown)} (see {prog} --help)") + "\n")
        return parsed


def folder(text: str) -> str:
    """A folder's path: anything but empty."""
    # An empty --out (an unset shell variable, say) is no folder; taken for
    # "not given", the run would land under runs/ unnoticed.
    if not text.strip():
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a folder's path, or omit "
                                         "--out for the default one")
    return text


def nonnegative_int(text: str) -> int:
    """A whole number from 0 to `MAX_COUNT`."""
    return _count(text, 0)


def folds(text: str) -> int:
    """A number of k-fold cross-validation folds: 2 or more."""
    value = _whole(text)
    if value is None or not 2 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"{text!r}: k-fold cross-validation needs a whole number of folds >= 2")
    return value


def positive_int(text: str) -> int:
    """A whole number from 1 to `MAX_COUNT`."""
    return _count(text, 1)


def _count(text: str, low: int) -> int:
    value = _whole(text)
    if value is None or not low <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {low}, at "
                                         f"most {MAX_COUNT:,}")
    return value


def _whole(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
