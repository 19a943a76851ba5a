"""The command line: `python run.py {regression,mnist,predict,bench} ...`.

Every task subcommand is built the same way: its configuration dataclass
contributes one flag per field (see `hw1_keras.config`), plus the shared
`--out`. Bad input of any kind ends in one line on stderr and exit status 2;
TensorFlow is imported only once the arguments are known to be good, so
`--help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from hw1_keras import arguments, inputs, process, tune_arguments
from hw1_keras.config import add_config_arguments, config_from_args
from hw1_keras.devices import DeviceConfig
from hw1_keras.errors import InputError
from hw1_keras.mnist.config import MnistConfig, quick_preset
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.text import PROG
from tuning.settings import CV_KINDS

PARTS = ("throughput", "precision", "quick", "accuracy", "resume")  # Of bench mnist.
# Which benchmarks read each `bench` flag, and the flag's value when not given.
BENCH_FLAGS = {
    "seeds": (("regression", "mnist", "tune"), None),
    "skip_plain": (("regression",), False),
    "data": (("mnist", "distribute", "photos"), None),
    "model": (("photos", "inputs"), None),
    "parts": (("mnist",), ["throughput", "quick"]),
    "cv": (("tune",), "interior"),
    "family": (("tune",), False),
    "resume_epochs": (("mnist",), 4),
    "out": (("mnist", "tune"), None),
    "against": (("tests",), None),
    "runs": (("tests",), 1),
}
# Where each benchmark lives, as an entry point ("module:function"). The
# benchmarks sit above the library (they time and judge it), so the library
# never imports them; `bench` loads the one asked for by name.
BENCHMARKS = {
    "regression": "benchmarks.regression:main",
    "mnist": "benchmarks.mnist:main",
    "tune": "benchmarks.tune:main",
    "tune --family": "benchmarks.tune_family:main",
    "distribute": "benchmarks.distribute:main",
    "photos": "benchmarks.photos:main",
    "inputs": "benchmarks.inputs:main",
    "tests": "benchmarks.suite:main",
}
NO_TENSORFLOW = {"tests"}  # Benchmarks that only time other processes.


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI, one subparser per command."""
    parser = arguments.OneLineParser(
        prog=PROG,
        description="The hw1 homework in Keras 3: a 1-D regression MLP and an MNIST CNN.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=arguments.OneLineParser)

    regression = commands.add_parser(
        "regression", help="train the regression MLP, plot it and export a SavedModel",
        description="Train the regression MLP (Dense 16 SELU -> Dense 64 sigmoid -> 1) on "
                    "the embedded data or your CSVs; write metrics, plots and a SavedModel.",
    )
    _add_out(regression)
    tune_arguments.add_regression(regression)
    add_config_arguments(regression, RegressionConfig)
    add_config_arguments(regression, DeviceConfig)

    mnist = commands.add_parser(
        "mnist", help="train the MNIST CNN, plot what it learned, export SavedModel + ONNX",
        description="Train the CNN on MNIST with augmentation; rerun with the same --out to "
                    "resume an interrupted run. Offline? Pass --data PATH.npz.",
    )
    _add_out(mnist)
    mnist.add_argument("--quick", action="store_true",
                       help="a few-minute run to try things (3 epochs of the originals, no "
                            "augmentation); with --tune, also few images and epochs per "
                            "setting (about 11 minutes in all on 2 cores); other flags "
                            "still apply")
    tune_arguments.add_mnist(mnist)
    add_config_arguments(mnist, MnistConfig)
    add_config_arguments(mnist, DeviceConfig)

    predict = commands.add_parser(
        "predict", help="answer from an exported SavedModel",
        description="Regression models: print CSV lines input,prediction. MNIST models: "
                    "print 'FILE: DIGIT (PROBABILITY)' per image.",
    )
    predict.add_argument("--model", required=True, metavar="DIR",
                         help="a run's saved_model/ folder, or an MNIST run's model.onnx "
                              "(run by onnxruntime, without TensorFlow)")
    predict.add_argument("--input", metavar="CSV",
                         help="read x values from a CSV (column 'input', or the first column)")
    predict.add_argument("inputs", nargs="*", metavar="INPUT",
                         help="x values for a regression model (e.g. 0.5 1.2 -3), or "
                              "digit images (PNG/JPEG, any size or colour) for an MNIST model")

    bench = commands.add_parser(
        "bench", help="measure speed, accuracy and reproducibility (see BENCHMARKS.md)",
        description="Run a task's benchmark and print the figures BENCHMARKS.md records, "
                    "then a JSON summary.",
    )
    bench.add_argument("task", choices=["regression", "mnist", "tune", "distribute", "photos",
                                        "inputs", "tests"],
                       help="which benchmark (tune: regression --tune, about 7 min; "
                            "distribute: mirrored overhead and 2 workers on loopback, "
                            "needs --data; photos: predict on photographed test digits, "
                            "needs --data and --model; inputs: the bad-input battery, refusal "
                            "times, predict's memory on a huge image with --model; tests: "
                            "the README's two test commands, timed)")
    bench.add_argument("--seeds", type=arguments.positive_int, default=None,
                       help="seeds for accuracy mean and std (default: 3 regression and "
                            "tune, 2 mnist)")
    bench.add_argument("--skip-plain", action="store_true", default=None,
                       help="regression: skip the slow plain-fit baseline (about 90 s)")
    bench.add_argument("--data", metavar="NPZ",
                       help="mnist, distribute, photos: a local MNIST .npz (required)")
    bench.add_argument("--model", metavar="DIR",
                       help="photos: an MNIST run's saved_model (required); inputs: an MNIST "
                            "export for predict's memory (optional)")
    bench.add_argument("--parts", type=_parts, default=None,
                       help="mnist: comma-separated parts among throughput,precision,quick,"
                            "accuracy,resume (default: throughput,quick; accuracy takes ~25 "
                            "min a seed)")
    bench.add_argument("--family", action="store_true", default=None,
                       help="tune: judge the search on 24 generated data sets instead "
                            "(default and tuned, one network and 5 seeds; about 45 min)")
    bench.add_argument("--cv", choices=CV_KINDS, default=None,
                       help="tune: the search's folds (default: interior, as --tune's)")
    bench.add_argument("--resume-epochs", type=arguments.positive_int, default=None,
                       help="mnist resume part: epochs of the killed run (default: 4)")
    bench.add_argument("--out", metavar="DIR", type=arguments.folder,
                       help="mnist: where its runs go (default: runs/bench-mnist); tune: a "
                            "new folder for the timed search (default: a temporary one); "
                            "tune --family: where each data set's result is kept, so that a "
                            "rerun resumes (default: runs/bench-family)")
    bench.add_argument("--against", metavar="REV",
                       help="tests: also time the suite at this commit, in a clone beside "
                            "this checkout, taking turns with it (default: this checkout only)")
    bench.add_argument("--runs", type=arguments.positive_int, default=None,
                       help="tests: timed runs of each command and checkout (default: 1)")
    return parser


def _benchmark(args: argparse.Namespace):
    """The `main(args)` of the benchmark `args` ask for (`BENCHMARKS`)."""
    import importlib

    name = "tune --family" if args.task == "tune" and args.family else args.task
    module, function = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), function)


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", type=arguments.folder,
                        help="run folder (default: runs/<task>-<date>-<time>)")


def _parts(text: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"got {text!r}; expected a comma-separated list of {','.join(PARTS)}")
    return parts


def _device(args: argparse.Namespace, tune: bool) -> DeviceConfig:
    """The device flags; a search runs its trials one per device, so no --distribute.

    Under `--tune`, `--distribute auto` means none: on several GPUs auto would
    otherwise mirror the winner's final training, whose batch size is only
    known, and checked against the replicas, after the whole search.
    """
    device = config_from_args(DeviceConfig, args)
    if tune and device.distribute in ("mirrored", "multiworker"):
        raise InputError(
            f"--distribute {device.distribute} applies to a plain run; a search spreads its "
            f"trials over machines with KerasTuner's chief/worker mode instead (see the "
            f"README's 'Distributed tuning')")
    if tune and device.distribute == "auto":
        device = dataclasses.replace(device, distribute="none")
    return device


def _bench_defaults(args: argparse.Namespace) -> None:
    """Refuses a flag the chosen benchmark does not read; fills in the rest's defaults."""
    for name, (tasks, default) in BENCH_FLAGS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        elif args.task not in tasks:
            flag = "--" + name.replace("_", "-")
            names = ", ".join(tasks[:-1]) + " and " + tasks[-1] if len(tasks) > 1 else tasks[0]
            raise InputError(f"{flag} applies to bench {names}, not bench {args.task}; "
                             "leave it out")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "regression":
        config = config_from_args(RegressionConfig, args)
        settings = tune_arguments.regression_settings(args)
        device = _device(args, settings is not None)
        inputs.check(args, config)
        process.import_tensorflow_quietly()
        if settings is not None:
            from tuning.regression import tune

            tune(config, settings, args.out, device)
            return 0
        from hw1_keras.regression.train import run

        run(config, args.out, device)
        return 0
    if args.command == "mnist":
        config = config_from_args(MnistConfig, args, quick_preset() if args.quick else None)
        settings = tune_arguments.mnist_settings(args)
        device = _device(args, settings is not None)
        inputs.check(args, config)
        process.import_tensorflow_quietly()
        if settings is not None:
            from tuning.mnist_studies import tune as tune_mnist

            tune_mnist(config, settings, args.out, device)
            return 0
        from hw1_keras.mnist.train import run as run_mnist

        run_mnist(config, args.out, device)
        return 0
    if args.command == "predict":
        inputs.check(args)
        from hw1_keras.predict import is_onnx, predict_command

        if not is_onnx(args.model):  # onnxruntime serves an .onnx file without TensorFlow.
            process.import_tensorflow_quietly()
        return predict_command(args.model, args.inputs, args.input)
    if args.command == "bench":
        _bench_defaults(args)
        inputs.check(args)
        if args.task not in NO_TENSORFLOW:
            process.import_tensorflow_quietly()
        results = _benchmark(args)(args)
        print(json.dumps(results, default=float))
        return 0
    raise AssertionError(args.command)  # argparse restricts the choices.


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    return process.run(args.command, lambda: _dispatch(args))
