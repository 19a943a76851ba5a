"""`python run.py predict`: answers from an exported SavedModel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from hw1_keras.errors import InputError
from hw1_keras.export import input_specs, load_endpoint
from hw1_keras.regression.data import csv_rows, parse_finite


# Below this probability an answer is marked unsure. On 10,000 photographed
# MNIST test digits (`python run.py bench photos`, the default recipe's
# export), every wrong answer was below it, and 2.3% of all answers.
UNSURE = 0.7


def read_inputs(path: str | Path) -> list[float]:
    """Reads x values from a CSV: its `input` column, or else its first column.

    A first row whose first cell is not a number is that column's header.

    Raises:
        InputError: missing or empty file, or a cell that is not a finite number.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--input {path}: is a folder, not a file; pass a CSV of x values")
    if not path.is_file():
        raise InputError(f"--input {path}: no such file")
    rows = csv_rows(path, f"--input {path}")
    if not rows:
        raise InputError(f"--input {path}: the file is empty; expected one x value per row")
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "input" in header:
        column, start = header.index("input"), 1
    else:  # The first column, under a header of another name or none.
        column, start = 0, 0 if _is_number(header[0] if header else "") else 1
    values = []
    for number, row in rows[start:]:
        cell = row[column] if column < len(row) else ""
        try:
            values.append(parse_finite(cell))
        except ValueError as error:
            raise InputError(f"--input {path}: row {number}: {error}") from None
    if not values:
        raise InputError(f"--input {path}: no data rows after the header")
    return values


def _is_number(text: str) -> bool:
    """Whether `text` reads as a number at all (inf and nan too: data, if bad data)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def predict_command(model_dir: str, inputs: Sequence[str], input_csv: str | None) -> int:
    """Answers from an exported model: x values for regression, image files for MNIST.

    Returns:
        0, or 2 when some image could not be read (the others are still answered).
    """
    if input_csv is None and not inputs:
        raise InputError("no inputs; pass x values (e.g. 0.5 1.2 -3), image files, "
                         "or --input FILE.csv")
    serve = load_endpoint(model_dir)
    shapes = [spec.shape.as_list() for spec in input_specs(serve)]
    if [None, 1] in shapes:
        return _predict_values(serve, [_number(text) for text in inputs]
                               + (read_inputs(input_csv) if input_csv else []))
    if [None, 28, 28] in shapes:
        if input_csv:
            raise InputError("--input is for regression models; pass image files instead")
        return _predict_images(serve, inputs)
    raise InputError(f"--model {model_dir}: takes inputs of shape {shapes[0]}, which "
                     "this command does not know")


def _number(text: str) -> float:
    try:
        return parse_finite(text)
    except ValueError as error:
        raise InputError(f"{error}; a regression model takes x values") from None


def _predict_values(serve, xs: list[float]) -> int:
    predictions = serve(np.asarray(xs, np.float32).reshape(-1, 1)).numpy().ravel()
    print("input,prediction")
    for x, y in zip(xs, predictions):
        print(f"{x:g},{y:.6g}")
    return 0


def _predict_images(serve, paths: Sequence[str]) -> int:
    """One line per image: the digit and its probability; bad files named on stderr."""
    from hw1_keras.mnist.images import load_digit

    failed = False
    for path in paths:
        try:
            digit = load_digit(path)
        except InputError as error:
            print(f"run.py predict: error: {error}", file=sys.stderr)  # As main's errors.
            failed = True
            continue
        probabilities = serve(digit[np.newaxis]).numpy()[0]
        best = int(probabilities.argmax())
        unsure = ", unsure" if probabilities[best] < UNSURE else ""
        print(f"{path}: {best} ({probabilities[best]:.1%}{unsure})", flush=True)
    return 2 if failed else 0
