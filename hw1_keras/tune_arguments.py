"""The `--tune` flags of `regression` and `mnist`, and the search settings they make.

Both build their settings (`tuning.settings.TuneSettings`,
`tuning.mnist_settings.StudySettings`) without importing TensorFlow, so a bad
value is answered at once; a search flag without `--tune` is an error.
"""

from __future__ import annotations

import argparse

from hw1_keras import arguments
from hw1_keras.errors import InputError
from tuning.mnist_settings import (
    DEFAULT_EPOCHS_PER_TRIAL, QUICK_EPOCHS_PER_TRIAL, QUICK_TRIAL_IMAGES, STUDY_NAMES,
    StudySettings, quick_settings,
)
from tuning.settings import CV_HELP, CV_KINDS, DEFAULT_FOLDS, DEFAULT_TRIALS, TuneSettings

# The --tune options of each task, as argparse destinations.
REGRESSION_TUNE_OPTIONS = ("trials", "folds", "homework_grid", "fresh", "cv")
MNIST_TUNE_OPTIONS = ("studies", "trials", "epochs_per_trial", "trial_images", "fresh")


def add_regression(parser: argparse.ArgumentParser) -> None:
    """regression's --tune flags, in their own help group."""
    group = parser.add_argument_group(
        "tuning (--tune)",
        "The run's own configuration scored by k-fold CV at --epochs; a random search "
        "(architecture, rates, batch size; 3-fold CV at a fifth of --epochs); a grid of 3 "
        "learning rates x 3 weight decays around its winner, at its batch size, by k-fold CV "
        "at --epochs; then the configuration chosen by the one-standard-error rule (the own "
        "one unless another is better beyond the folds' noise) trained on all the data and "
        "exported as usual. Rerun the same command to resume an interrupted search (--out defaults to "
        "runs/regression-tune for that).")
    group.add_argument("--tune", action="store_true",
                       help="search the hyperparameters before training (see above)")
    group.add_argument("--trials", type=arguments.nonnegative_int, default=None,
                       help=f"random-search trials; 0 skips it and centres the grid on the "
                            f"configured model (default: {DEFAULT_TRIALS})")
    group.add_argument("--folds", type=arguments.folds, default=None,
                       help=f"k of the grid's k-fold cross-validation (default: "
                            f"{DEFAULT_FOLDS}, as the homework)")
    group.add_argument("--homework-grid", action="store_true", default=None,
                       help="grid the homework's values instead: lr 4e-4,5e-4,6e-4 x weight "
                            "decay 1.3e-3,1.5e-3,1.7e-3 x batch 50,100")
    group.add_argument("--fresh", action="store_true", default=None,
                       help="delete an earlier search in --out and start over (default: resume)")
    group.add_argument("--cv", choices=CV_KINDS, default=None,
                       help="how the folds are made: "
                            + "; ".join(f"{kind}{' (default)' * (i == 0)}: {text}"
                                        for i, (kind, text) in enumerate(CV_HELP.items())))


def add_mnist(parser: argparse.ArgumentParser) -> None:
    """mnist's --tune flags, in their own help group."""
    group = parser.add_argument_group(
        "tuning (--tune)",
        "The homework's one-factor studies as KerasTuner grid searches on train/validation: "
        "depth, filters, dense units, dropout, batch size, batch norm, stride-2 vs max-pool, "
        "everything else as configured. One plot per study (studies/<study>.png), a table "
        "of every setting's best validation accuracy (studies.md), then the studies' clear "
        "winners (beyond the paired validation noise), checked together at the same budget, "
        "trained with the run's recipe (--epochs ...) and exported as usual. Rerun the same "
        "command to resume an interrupted search (--out defaults to runs/mnist-tune).")
    group.add_argument("--tune", action="store_true",
                       help="run the studies before training (see above)")
    group.add_argument("--studies", type=_studies, default=None,
                       help=f"which studies, in this order (default: all, "
                            f"{','.join(STUDY_NAMES)})")
    group.add_argument("--trials", type=arguments.positive_int, default=None,
                       help="at most this many settings in all, studies in order (default: "
                            "all 19); rerun with more to continue")
    group.add_argument("--epochs-per-trial", type=arguments.positive_int, default=None,
                       help=f"epochs each setting trains (default: {DEFAULT_EPOCHS_PER_TRIAL}; "
                            f"--quick: {QUICK_EPOCHS_PER_TRIAL})")
    group.add_argument("--trial-images", type=arguments.positive_int, default=None,
                       help=f"training images each setting sees (default: all; --quick: "
                            f"{QUICK_TRIAL_IMAGES:,})")
    group.add_argument("--fresh", action="store_true", default=None,
                       help="delete an earlier search in --out and start over (default: resume)")


def _tune_options(args: argparse.Namespace, names: tuple[str, ...]) -> dict | None:
    """The --tune options given, or None for a plain run; one-line errors for misuse."""
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if not args.tune:
        if given:
            flag = "--" + next(iter(given)).replace("_", "-")
            raise InputError(f"{flag} applies to a search; add --tune")
        return None
    return given


def regression_settings(args: argparse.Namespace) -> TuneSettings | None:
    """regression's --tune options, or None for a plain run."""
    given = _tune_options(args, REGRESSION_TUNE_OPTIONS)
    return None if given is None else TuneSettings(**given)


def mnist_settings(args: argparse.Namespace) -> StudySettings | None:
    """mnist's --tune options (--quick's preset under them), or None for a plain run."""
    given = _tune_options(args, MNIST_TUNE_OPTIONS)
    if given is None:
        return None
    return quick_settings(**given) if args.quick else StudySettings(**given)


def _studies(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in STUDY_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"got {text!r}; expected a comma-separated list of {','.join(STUDY_NAMES)}")
    return names
