"""`python run.py predict`: answers from an exported SavedModel, or an MNIST run's ONNX file.

A `.onnx` model is run by onnxruntime (`hw1_keras.onnx_serving`), without
importing TensorFlow; anything else is read as a SavedModel folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from hw1_keras.errors import InputError
from hw1_keras.regression.data import csv_rows, parse_finite
from hw1_keras.text import PROG


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
    serve, form, signatures = _load(model_dir)
    shapes = [list(shape) for shape, _ in signatures]
    if [None, 1] in shapes:
        # Read before saying what loaded, so that a bad value is the one line.
        xs = [_number(text) for text in inputs] + (read_inputs(input_csv) if input_csv else [])
        _say_loaded(model_dir, "regression model", form, signatures)
        return _predict_values(serve, xs)
    if [None, 28, 28] in shapes:
        if input_csv:
            raise InputError("--input is for regression models; pass image files instead")
        _say_loaded(model_dir, "MNIST classifier", form, signatures)
        return _predict_images(serve, inputs)
    raise InputError(f"--model {model_dir}: takes inputs of shape {shapes[0]}, which "
                     "this command does not know")


def _say_loaded(model: str, task: str, form: str, signatures) -> None:
    # On stderr: stdout holds the answers (CSV for regression), for programs to read.
    print(f"{PROG} predict: loaded {model}: {task} ({form}), input "
          f"{describe_inputs(signatures)}", file=sys.stderr, flush=True)


def is_onnx(model: str) -> bool:
    """Whether `--model` names an ONNX file (run without TensorFlow), not a SavedModel."""
    return Path(model).suffix.lower() == ".onnx"


def _load(model: str):
    """The model's endpoint, its form, and the (shape, dtype name) of each input it takes."""
    if is_onnx(model):
        from hw1_keras import onnx_serving

        return (onnx_serving.load_onnx(model), "ONNX",
                [(shape, dtype) for shape in onnx_serving.SHAPES
                 for dtype in onnx_serving.DTYPES])
    from hw1_keras.export import input_specs, load_endpoint

    serve = load_endpoint(model)
    return serve, "SavedModel", [(tuple(spec.shape.as_list()), spec.dtype.name)
                                 for spec in input_specs(serve)]


def describe_inputs(signatures: Sequence[tuple[tuple[int | None, ...], str]]) -> str:
    """The inputs a model takes, for a person: `(N, 28, 28[, 1]) uint8/float32`.

    Shapes that differ only by a trailing axis of 1 are written as one, with
    that axis in brackets; None (any size) as N.
    """
    shapes = list(dict.fromkeys(tuple(shape) for shape, _ in signatures))
    dtypes = list(dict.fromkeys(dtype for _, dtype in signatures))
    written = []
    for shape in shapes:
        if shape[-1:] == (1,) and shape[:-1] in shapes:
            continue  # Written with the shape it extends.
        dims = ", ".join("N" if dim is None else str(dim) for dim in shape)
        written.append(f"({dims}[, 1])" if shape + (1,) in shapes else f"({dims})")
    return f"{' or '.join(written)} {'/'.join(dtypes)}"


def _number(text: str) -> float:
    try:
        return parse_finite(text)
    except ValueError as error:
        raise InputError(f"{error}; a regression model takes x values") from None


def _array(output) -> np.ndarray:
    """An endpoint's answer as NumPy: a SavedModel's is a tensor, an ONNX one's an array."""
    return output.numpy() if hasattr(output, "numpy") else np.asarray(output)


def _predict_values(serve, xs: list[float]) -> int:
    predictions = _array(serve(np.asarray(xs, np.float32).reshape(-1, 1))).ravel()
    print("input,prediction")
    for x, y in zip(xs, predictions):
        print(f"{x:g},{y:.6g}")
    return 0


def _predict_images(serve, paths: Sequence[str]) -> int:
    """One line per image: the digit and its probability; bad files named on stderr."""
    from hw1_keras.photos import load_digit

    failed = False
    for path in paths:
        try:
            digit = load_digit(path)
        except InputError as error:
            print(f"{PROG} predict: error: {error}", file=sys.stderr)  # As main's errors.
            failed = True
            continue
        probabilities = _array(serve(digit[np.newaxis]))[0]
        best = int(probabilities.argmax())
        unsure = ", unsure" if probabilities[best] < UNSURE else ""
        print(f"{path}: {best} ({probabilities[best]:.1%}{unsure})", flush=True)
    return 2 if failed else 0
