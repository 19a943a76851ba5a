"""Bad input files and an unwritable --out, refused before TensorFlow loads."""

from __future__ import annotations

import argparse

from hw1_keras import runs
from hw1_keras.config import require_regular_file
from hw1_keras.mnist import data as mnist_data
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import RegressionConfig

CSV_EXPECTED = "a CSV file with columns input,label"
MODEL_EXPECTED = "a run's saved_model/ folder or its model.onnx"


def check(args: argparse.Namespace, config=None) -> None:
    """Refuses bad input files and an unwritable `--out`, before TensorFlow loads.

    What the run would find out only after TensorFlow's import (seconds), it
    is told here in well under a second: a regression's CSV files are read and
    checked whole, an MNIST `.npz` from its arrays' headers and labels
    (`hw1_keras.mnist.data.check_file`), a path that is no regular file (a
    FIFO, /dev/null) is named as such, and `--out` must take a probe file.

    Args:
        args: The parsed command line.
        config: The command's configuration (regression, mnist), if any.
    """
    if isinstance(config, RegressionConfig) and config.train is not None:
        for flag, path in (("--train", config.train), ("--test", config.test)):
            require_regular_file(path, f"{flag} {path}", CSV_EXPECTED)
        regression_data.load(config.train, config.test, config.data_seed)
    if isinstance(config, MnistConfig):
        mnist_data.check_file(config.data, config.validation_size)
    if args.command == "predict":
        if args.input is not None:
            require_regular_file(args.input, f"--input {args.input}", "a CSV file of x values")
        for path in args.inputs:  # x values name no file, so they pass.
            require_regular_file(path, path, "image files (PNG/JPEG) or x values")
    if args.command in ("predict", "bench") and args.model is not None:
        require_regular_file(args.model, f"--model {args.model}", MODEL_EXPECTED)
    if args.command == "bench" and args.data is not None:
        mnist_data.check_file(args.data, validation_size=None)
    if getattr(args, "out", None) is not None or args.command in ("regression", "mnist"):
        runs.check_out(args.out)
