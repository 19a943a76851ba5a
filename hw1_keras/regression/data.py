"""The regression data: the embedded homework-like set and users' CSV files.

The embedded set reproduces the homework's setting: 100 noisy training points
in clusters that leave two "dark intervals" with no data, and 100 much less
noisy test points spread over the whole range, gaps included. A model is judged
on how it bridges the gaps, where only its inductive bias can help.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

from hw1_keras.errors import InputError
from hw1_keras.text import plural

X_RANGE = (-5.0, 5.0)
# The dark intervals: about 2 wide near x = -2 and about 1.4 wide near x = 2.5.
GAPS = ((-3.0, -1.0), (1.8, 3.2))
TRAIN_NOISE_SD = 0.5
TEST_NOISE_SD = 0.1
TRAIN_SIZE = 100
TEST_SIZE = 100
MIN_TRAIN_ROWS = 2  # Mini-batch training needs at least two samples to shuffle.
MIN_TEST_ROWS = 1
FLOAT32_MAX = float(np.finfo(np.float32).max)


def target_function(x: np.ndarray) -> np.ndarray:
    """The unknown function: a cubic trend plus an oscillation (not a polynomial).

    Over [-5, 5] it has several bumps, so a network must bend in the gaps rather
    than interpolate a straight line.
    """
    return 0.05 * x**3 - 0.8 * x + 1.5 * np.sin(1.5 * x)


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of 1-D regression data, each array of shape (N, 1), float32."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def in_gaps(x: np.ndarray, gaps=GAPS) -> np.ndarray:
    """Boolean mask of the points that fall inside a dark interval."""
    x = np.asarray(x).reshape(-1)
    return np.any([(x > lo) & (x < hi) for lo, hi in gaps], axis=0)


def sample_segments(rng: np.random.Generator, segments, n: int) -> np.ndarray:
    """`n` uniform samples over `segments`, each chosen in proportion to its length."""
    lengths = np.array([hi - lo for lo, hi in segments])
    which = rng.choice(len(segments), size=n, p=lengths / lengths.sum())
    low = np.array([segments[i][0] for i in which])
    return low + rng.uniform(0.0, 1.0, n) * lengths[which]


def _sample_outside_gaps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform samples over X_RANGE with the gaps cut out."""
    edges = [X_RANGE[0]] + [e for gap in GAPS for e in gap] + [X_RANGE[1]]
    return sample_segments(rng, list(zip(edges[::2], edges[1::2])), n)


def generate(seed: int = 2020) -> tuple[Split, Split]:
    """Generates the embedded train and test splits, deterministically.

    Args:
        seed: Seeds positions and noise; the same seed gives the same arrays.

    Returns:
        `(train, test)`: 100 training points outside the gaps with noise sd 0.5,
        100 test points uniform over [-5, 5] with noise sd 0.1. Both sorted by x.
    """
    rng = np.random.default_rng(seed)
    x_train = np.sort(_sample_outside_gaps(rng, TRAIN_SIZE))
    x_test = np.sort(rng.uniform(*X_RANGE, TEST_SIZE))
    y_train = target_function(x_train) + rng.normal(0.0, TRAIN_NOISE_SD, TRAIN_SIZE)
    y_test = target_function(x_test) + rng.normal(0.0, TEST_NOISE_SD, TEST_SIZE)
    return split(x_train, y_train), split(x_test, y_test)


def split(x, y) -> Split:
    column = lambda a: np.asarray(a, dtype=np.float32).reshape(-1, 1)  # noqa: E731
    return Split(column(x), column(y))


def write_csv(split: Split, path: str | Path) -> None:
    """Writes a split as `input,label` CSV, one point per row."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["input", "label"])
        for x, y in zip(split.x[:, 0], split.y[:, 0]):
            writer.writerow([repr(float(x)), repr(float(y))])


def read_csv(path: str | Path, *, min_rows: int = MIN_TEST_ROWS) -> Split:
    """Reads and validates an `input,label` CSV (a headerless 2-column CSV too).

    Args:
        path: The file to read.
        min_rows: The fewest data rows accepted.

    Returns:
        The split, as float32 column arrays.

    Raises:
        InputError: one line naming the file, the row and the problem, for a
            missing or empty file, a wrong header or column count, a
            non-numeric, NaN or infinite cell, or too few rows.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file; pass a CSV file with columns "
                         "input,label")
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass an existing CSV with columns input,label")
    rows = csv_rows(path, str(path))
    if not rows:
        raise InputError(f"{path}: the file is empty; expected a header input,label and data rows")

    start = 1 if _is_header(rows[0][1], path) else 0
    xs, ys = [], []
    for number, row in rows[start:]:
        if len(row) != 2:
            raise InputError(
                f"{path}: row {number} has {plural(len(row), 'column')}; expected 2 "
                "(input,label)"
            )
        xs.append(_number(row[0], path, number, "input"))
        ys.append(_number(row[1], path, number, "label"))
    if len(xs) < min_rows:
        raise InputError(
            f"{path}: {plural(len(xs), 'data row')}; need at least {min_rows}"
        )
    return split(xs, ys)


def csv_rows(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a text CSV, each with its line number for messages.

    Args:
        path: The file.
        name: How error messages name it, e.g. `--input xs.csv`.

    Raises:
        InputError: the file cannot be read or is not text.
    """
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [(number, row) for number, row in enumerate(csv.reader(handle), 1)
                    if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{name}: not a readable text CSV ({error})") from None
    except OSError as error:
        raise InputError(f"{name}: cannot be read ({error.strerror})") from None


def _is_header(row: list[str], path: Path) -> bool:
    """True for the `input,label` header; False for a numeric first row."""
    cells = [cell.strip().lower() for cell in row]
    if cells == ["input", "label"]:
        return True
    try:
        [float(cell) for cell in cells]
        return False
    except ValueError:
        raise InputError(
            f"{path}: row 1 is {','.join(row)!r}; expected the header input,label "
            "(or a numeric first row for a headerless file)"
        ) from None


def parse_finite(text: str) -> float:
    """The finite number `text` spells, within float32's range (the models' dtype).

    Raises:
        ValueError: "'TEXT' is not a number", "... is not a finite number"
            (NaN, inf) or "... is beyond float32's range", for callers to
            prefix with where the text came from.
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    if abs(value) > FLOAT32_MAX:  # Would become inf in the float32 arrays.
        raise ValueError(f"{text.strip()!r} is beyond float32's range (about ±3.4e38)")
    return value


def _number(cell: str, path: Path, row: int, column: str) -> float:
    try:
        return parse_finite(cell)
    except ValueError as error:
        raise InputError(f"{path}: row {row}, column {column}: {error}") from None


def load(train_path: str | None, test_path: str | None, data_seed: int) -> tuple[Split, Split]:
    """Users' CSV files when given, else the embedded data."""
    if train_path is None:
        return generate(data_seed)
    return (
        read_csv(train_path, min_rows=MIN_TRAIN_ROWS),
        read_csv(test_path, min_rows=MIN_TEST_ROWS),
    )


# --- A family of data sets of the embedded one's shape ---------------------------
