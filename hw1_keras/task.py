"""One run of a task, from its data to a finished run folder: the steps both tasks share.

A task (`hw1_keras.regression.train.TASK`, `hw1_keras.mnist.train.TASK`)
says how it loads its data, trains, and turns a trained model into results
(evaluation, plots, export). This module runs those steps in one order for
both, and holds what is the same for every task:

- the hardware (`hw1_keras.devices.setup`), and on a multi-worker run the
  branch between the chief, which keeps the results, and the other workers,
  which train beside it and write nothing;
- the run folder: made only once every input checked out, refused when it
  holds another configuration's run, and `metrics.json` written last;
- the single-device float32 copy of a model trained under a strategy, so that
  results are the same on every kind of machine (`hw1_keras.replicas`);
- for a task whose runs resume (`Task.backup`), the same command on a
  finished run folder keeping its results instead of training again.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from hw1_keras import devices, replicas, runs
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.rerun import changes_from_saved, check_run_dir


@dataclasses.dataclass(frozen=True)
class Trained:
    """What `Task.train` hands on to `Task.results`."""

    model: Any  # The trained keras.Model, under the strategy it trained in.
    # Builds the same architecture anew, for the single-device copy; None when
    # `model` trained outside any strategy and is kept as it is (an ensemble).
    build: Callable[[], Any] | None
    details: dict = dataclasses.field(default_factory=dict)  # The task's own (history, ...).


class Task(abc.ABC):
    """The steps one task supplies to `run` and `train_and_export`."""

    name: str  # The subcommand, and the stem of its default run folder.
    # The run folder's entry holding an interrupted run's training state, which
    # makes the task's runs resume; None: a rerun trains from the start.
    backup: str | None = None

    @abc.abstractmethod
    def load(self, config) -> Any:
        """The run's data; raises `InputError` on a bad file."""

    def batch_size(self, config, data) -> int:
        """The global batch the run trains with (checked against the devices)."""
        return config.batch_size

    def check_run_dir(self, run_dir: Path, config) -> None:
        """Refuses a run folder that holds another configuration's run (`InputError`)."""
        check_run_dir(run_dir, to_dict(config))

    @abc.abstractmethod
    def train(self, config, data, run_dir: Path, *, runtime: devices.Runtime | None,
              chief_dir: Path | None) -> Trained:
        """Trains `config` on `data`, writing any training files into `run_dir`.

        `chief_dir`: on a multi-worker run's other workers, the chief's run
        folder (`run_dir` is then a scratch folder of their own).
        """

    @abc.abstractmethod
    def results(self, config, model, data, trained: Trained, run_dir: Path) -> dict:
        """Evaluates, plots and exports the single-device `model`; returns its metrics."""

    @abc.abstractmethod
    def summary(self, metrics: dict) -> str:
        """The line printed when a run finishes."""

    def headline(self, metrics: dict) -> str:
        """The figure a finished run is known by, for the line that keeps it."""
        return self.summary(metrics)


def run(task: Task, config, out: str | None = None,
        device: devices.DeviceConfig | None = None) -> dict:
    """Trains, evaluates, plots and exports one run of `task`.

    Every input is validated before the run folder is touched, so a bad flag
    or file never disturbs an earlier run's results.

    Args:
        task: What to run.
        config: The run's configuration.
        out: The run folder (default: a new one under `runs/`).
        device: Hardware settings (default: `DeviceConfig()`, which picks).

    Returns:
        The metrics written to `metrics.json`, with `run_dir` added (for a
        multi-worker run's other workers, which write nothing: `{}`).
    """
    started = time.perf_counter()
    runtime = devices.setup(device or devices.DeviceConfig(), task.name)
    data = task.load(config)
    devices.check_batch(task.batch_size(config, data), runtime.policy)
    if not runtime.is_chief:
        # Every worker trains; only the chief keeps results. The others write
        # their training files into scratch (and resume from the chief's backup).
        scratch = Path(tempfile.mkdtemp(prefix="hw1-worker-"))
        try:
            train_and_export(task, config, scratch, data, started=started, runtime=runtime,
                             chief_dir=Path(out) if out else None)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {}
    new_folder = out is None or not Path(out).exists()
    run_dir = runs.make_run_dir(out, task.name)
    task.check_run_dir(run_dir, config)
    try:
        return train_and_export(task, config, run_dir, data, started=started, runtime=runtime)
    except InputError:
        if new_folder:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # Only while still empty: a failed run leaves no folder.
        raise


def train_and_export(task: Task, config, run_dir: Path, data, *, started: float,
                     extra: dict | None = None, runtime: devices.Runtime | None = None,
                     chief_dir: Path | None = None) -> dict:
    """Trains `config`, then evaluates, plots and exports it into `run_dir`.

    The one path to a finished run, for a plain run and for a search's
    choice alike.

    Args:
        task: What to run.
        config: The configuration to train.
        run_dir: The run folder (created).
        data: `task.load(config)`'s data.
        started: `time.perf_counter()` at the start of the run, for
            `total_seconds`.
        extra: More entries for `metrics.json` (e.g. a search's summary).
        runtime: Where to train (default: here, on one device).
        chief_dir: Set on a multi-worker run's other workers: they train,
            then stop without evaluating or writing anything else.

    Returns:
        The metrics written to `metrics.json`, with `run_dir` added (`{}` on
        the other workers).
    """
    finished = finished_run(task, run_dir, config)
    if finished is not None:
        # The same command again: training would only repeat the seeded
        # result, and stopping that rerun would leave its training files in
        # place of the finished run's.
        if extra:  # A search's summary, perhaps of more trials than before.
            finished.update(extra)
            runs.write_json(run_dir / runs.FINISHED, finished)
        print(f"{run_dir}: this run finished already ({task.headline(finished)}); its results "
              "are kept. Pass another --out to train it again.")
        return {**finished, "run_dir": str(run_dir)}
    if task.backup is not None:
        # Before training: a backup resumes only under the configuration it
        # saved. (The folder itself was accepted already, by `run` or a search.)
        if (run_dir / task.backup).exists():
            check_run_dir(run_dir, to_dict(config), interrupted=True, search=True)
        runs.begin_results(run_dir, to_dict(config))
    trained = task.train(config, data, run_dir, runtime=runtime, chief_dir=chief_dir)
    model = trained.model
    if runtime is not None:
        if trained.build is not None:
            model = replicas.trained_copy(model, trained.build, runtime)
        if not runtime.is_chief:
            return {}
    if task.backup is None:
        # Only now, so that a failed training leaves an earlier run in the
        # folder as it was.
        runs.begin_results(run_dir, to_dict(config))
    metrics = {
        **task.results(config, model, data, trained, run_dir),
        "parameters": model.count_params(),
        "seed": config.seed,
        "config": to_dict(config),
        **({"device": runtime.record()} if runtime is not None else {}),
        **(extra or {}),
    }
    metrics["total_seconds"] = time.perf_counter() - started
    runs.write_json(run_dir / runs.FINISHED, metrics)
    if task.backup is not None:
        shutil.rmtree(run_dir / task.backup, ignore_errors=True)  # Nothing left to resume.
    print(task.summary(metrics))
    print(f"results in {run_dir}/")
    return {**metrics, "run_dir": str(run_dir)}


def finished_run(task: Task, run_dir: Path, config) -> dict | None:
    """The metrics of a run of `config` that `run_dir` holds finished, for a resuming task."""
    metrics = run_dir / runs.FINISHED
    if task.backup is None or (run_dir / task.backup).exists() or not metrics.is_file():
        return None
    return runs.read_json(metrics) if changes_from_saved(run_dir, to_dict(config)) == "" else None
