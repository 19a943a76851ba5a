"""Every place the project reaches into private Keras, KerasTuner or argparse code.

Each function below works around one gap in a public API, says why, names the
upstream issue where there is one, and is called explicitly where it is needed.
Private names change without notice between releases, so each first checks
the installed version against the range this project was tested with
(`TESTED`): outside it, the run goes on but says so, once, in one line on
stderr, and a private name that is gone ends in one line naming the package
and the versions to install, never in a wrong result.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys

from hw1_keras.errors import InputError

# The releases the test suite passed on, as (lowest, first untested);
# requirements.txt and pyproject.toml pin the same ranges.
TESTED = {
    "keras": ((3, 15), (3, 16)),
    "keras-tuner": ((1, 4, 8), (1, 5)),
}
_warned: set[str] = set()


def _version(package: str) -> tuple[int, ...]:
    text = importlib.metadata.version(package)
    numbers = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def _wanted(package: str) -> str:
    low, high = TESTED[package]
    return f"'{package}>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}'"


def untested(package: str) -> str | None:
    """One line on `package`'s installed version if it is outside `TESTED`, else None."""
    low, high = TESTED[package]
    installed = _version(package)
    if low <= installed < high:
        return None
    return (f"note: {package} {'.'.join(map(str, installed))} is not a version this project "
            f"was tested with; if resume or distributed tuning misbehaves, "
            f"pip install {_wanted(package)}")


def _check(package: str) -> None:
    if package not in _warned:
        _warned.add(package)
        if line := untested(package):
            print(line, file=sys.stderr)


def _private(owner, name: str, package: str):
    """`owner.name`, or one line saying which versions have it."""
    _check(package)
    try:
        return getattr(owner, name)
    except AttributeError:
        raise InputError(f"{package} {importlib.metadata.version(package)} has no "
                         f"{getattr(owner, '__name__', type(owner).__name__)}.{name}, which this "
                         "project relies on; "
                         f"pip install {_wanted(package)}") from None


# --- Keras: fit under MultiWorkerMirroredStrategy (keras-team/keras#20585) ----------

def build_before_fit(model, batch) -> None:
    """Builds `model`'s metrics and optimizer from `batch`, and skips Keras' own build.

    Keras 3 builds them inside `fit` from a batch it averages over the
    workers, which fails under `MultiWorkerMirroredStrategy`. Call in the
    strategy's scope, before `fit`.
    """
    _private(model, "_symbolic_build", "keras")(data_batch=batch)
    _private(model, "_maybe_symbolic_build", "keras")
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def average_metrics_over_replicas() -> None:
    """Makes Keras average logged metrics over replicas with `axis=None`.

    Keras 3's `reduce_per_replica` reduces them with `axis=0`, which fails on
    scalars under `MultiWorkerMirroredStrategy`. It is a module function that
    `fit` looks up on each call, so this replaces it for the process, once;
    under every other strategy the replacement calls the original.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original = _private(trainer, "reduce_per_replica", "keras")
    if getattr(original, "hw1_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None)
                if isinstance(v, tf.distribute.DistributedValues) else v, values)
        return original(values, strategy, reduction)

    reduce_per_replica.hw1_patched = True
    trainer.reduce_per_replica = reduce_per_replica


# --- Keras: BackupAndRestore's files (no upstream issue found) -----------------------

def backup_files(callback) -> dict[str, str]:
    """A `BackupAndRestore(double_checkpoint=True)`'s file paths, current and previous.

    Keras falls back to the previous pair when the weights are torn, not when
    `training_metadata.json` is; `backup.ResumingBackup` does that too and
    needs the paths, which Keras keeps private.
    """
    names = ("_weights_path", "_training_metadata_path", "_prev_weights_path",
             "_prev_training_metadata_path")
    return {name.strip("_"): _private(callback, name, "keras") for name in names}


def reload_backup(callback) -> None:
    """Loads a `BackupAndRestore`'s files into its model, as `on_train_begin` does."""
    _private(callback, "_load_model", "keras")()


# --- KerasTuner: GridSearch after a reload (keras-team/keras-tuner#1055) ------------

def grid_compare(oracle, a: dict, b: dict) -> int:
    """A `GridSearchOracle`'s order of two combinations of values (-1, 0, 1)."""
    return _private(oracle, "_compare", "keras-tuner")(a, b)


def set_grid_walk(oracle, order: list[str]) -> None:
    """Sets a `GridSearchOracle`'s walk to the trials `order` (in grid order).

    KerasTuner keeps the walk (`_ordered_ids`, `_populate_next`) in memory
    only, so a reloaded grid search stops or fails instead of going on.
    """
    walk = type(_private(oracle, "_ordered_ids", "keras-tuner"))()  # Its LinkedList.
    for trial_id in order:
        walk.insert(trial_id)
    oracle._ordered_ids = walk
    oracle._populate_next = list(order)


# --- KerasTuner: the chief's oracle server (keras-team/keras-tuner#325, #967) --------

@contextlib.contextmanager
def oracle_server(serve):
    """Within the block, KerasTuner's chief serves its oracle with `serve(oracle)`.

    KerasTuner's `start_server` polls for the end every 20 s, shares its port
    (gRPC's SO_REUSEPORT) and stops at once; `tuning.distributed.serve` does
    not. `BaseTuner.search` looks the function up on each call, so it is
    replaced for the block only.
    """
    from keras_tuner.src.distribute import oracle_chief

    original = _private(oracle_chief, "start_server", "keras-tuner")
    oracle_chief.start_server = serve
    try:
        yield
    finally:
        oracle_chief.start_server = original


def oracle_servicer(oracle, server):
    """Adds KerasTuner's gRPC servicer of `oracle` to `server`; returns the servicer."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    servicer = _private(oracle_chief, "OracleServicer", "keras-tuner")(oracle)
    _private(protos, "get_service_grpc", "keras-tuner")().add_OracleServicer_to_server(
        servicer, server)
    return servicer


def oracle_done(servicer, oracle) -> bool:
    """Whether a worker was told to stop and every worker it served has been."""
    from keras_tuner.src.distribute import oracle_chief

    return bool(servicer.stop_triggered
                and _private(oracle_chief, "exit_chief", "keras-tuner")(oracle))


# --- KerasTuner: state files written in place (no upstream issue found) --------------

@contextlib.contextmanager
def whole_state_files():
    """Within the block, KerasTuner writes each state file whole or not at all.

    `keras_tuner.src.utils.save_json`, through which the oracle, the tuner
    and every trial save themselves, opens the file for writing and then
    writes: a full disk (or a kill in between) leaves an empty `oracle.json`
    or `trial.json`, and the next run cannot resume the search. This writes
    beside the file and renames it over the old one, which stays intact
    until the new one is complete, and the error stops the search: left to
    KerasTuner, an `OSError` inside a trial marks that trial failed and the
    search goes on without it. Paths with a scheme (`gs://`) keep
    KerasTuner's own writer.
    """
    import json

    from keras_tuner.errors import FatalError
    from keras_tuner.src import utils

    from hw1_keras.runs import write_text

    class StateWriteError(OSError, FatalError):
        """An `OSError` that KerasTuner passes on instead of failing the trial with it."""

    original = _private(utils, "save_json", "keras-tuner")

    def save_json(path, obj):
        if "://" in str(path):
            return original(path, obj)
        text = json.dumps(obj)
        try:
            write_text(path, text)  # Beside the file, then renamed over it.
        except OSError as error:
            # Not the trial's failure: the search stops, its files as they were.
            raise StateWriteError(error.errno, error.strerror, error.filename) from None
        return text

    utils.save_json = save_json
    try:
        yield
    finally:
        utils.save_json = original


# --- argparse: values that look like negative numbers --------------------------------

def read_negative_values(parser, pattern) -> None:
    """Makes `parser` read an argument matching `pattern` as a value, never a flag.

    argparse decides with a private matcher that knows only `-3` and `-0.5`,
    so `--weight-decay -1e-3` fails as "expected one argument". Python's own
    argparse, so no version range: a Python without it keeps that behaviour.
    """
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = pattern
