"""`hw1_keras.task`: the order of a run's steps and the run folder they leave, without Keras.

A fake task stands in for the two real ones (whose runs `test_regression_run`
and `test_mnist_run` check end to end): each step records itself, so these
tests see what the shared pipeline does between them.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from hw1_keras import task
from hw1_keras.errors import InputError
from hw1_keras.task import Trained


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    size: int = 3
    batch_size: int = 2


class Model:
    def count_params(self) -> int:
        return 7


class FakeTask(task.Task):
    name = "fake"

    def __init__(self, backup=None, fail_training=False):
        self.backup = backup
        self.fail_training = fail_training
        self.steps = []

    def load(self, config):
        return "data"

    def train(self, config, data, run_dir, *, runtime, chief_dir):
        self.steps.append(("train", sorted(p.name for p in run_dir.iterdir())))
        if self.backup:
            (run_dir / self.backup).mkdir(exist_ok=True)
        if self.fail_training:
            raise InputError("training diverged")
        return Trained(Model(), None, {"seconds": 1.5})

    def results(self, config, model, data, trained, run_dir):
        self.steps.append(("results", sorted(p.name for p in run_dir.iterdir())))
        (run_dir / "plot.png").write_bytes(b"png")
        return {"score": 0.5, "train_seconds": trained.details["seconds"]}

    def summary(self, metrics):
        return f"score {metrics['score']}"


def _finish(fake, run_dir, config=Config(), **kwargs):
    run_dir.mkdir(exist_ok=True)
    return task.train_and_export(fake, config, run_dir, "data", started=0.0, **kwargs)


def test_a_run_writes_its_config_after_training_and_its_metrics_last(tmp_path, capsys):
    fake = FakeTask()
    metrics = _finish(fake, tmp_path / "run", extra={"tuning": {"kept": True}})
    # Not resumable: an earlier run stays as it was until training succeeded.
    assert fake.steps == [("train", []), ("results", ["config.json"])]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == {key: value for key, value in metrics.items() if key != "run_dir"}
    assert saved["parameters"] == 7 and saved["config"] == {"seed": 0, "size": 3, "batch_size": 2}
    assert saved["tuning"] == {"kept": True} and saved["train_seconds"] == 1.5
    assert saved["total_seconds"] >= 0
    assert capsys.readouterr().out.splitlines() == ["score 0.5", f"results in {tmp_path / 'run'}/"]


def test_a_resuming_task_drops_its_backup_once_finished_and_keeps_a_finished_run(tmp_path,
                                                                                 capsys):
    fake = FakeTask(backup="backup")
    first = _finish(fake, tmp_path / "run")
    assert not (tmp_path / "run" / "backup").exists()  # Finished: nothing to resume.
    capsys.readouterr()
    again = FakeTask(backup="backup")
    kept = _finish(again, tmp_path / "run", extra={"tuning": {"trials": 9}})
    assert again.steps == []  # Not trained again.
    assert kept["score"] == first["score"] and kept["tuning"] == {"trials": 9}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tuning"] == {"trials": 9}
    assert "this run finished already (score 0.5); its results are kept" in \
        capsys.readouterr().out


@pytest.mark.parametrize("change", ["other_config", "interrupted", "not_resumable"])
def test_only_a_finished_run_of_the_same_config_counts_as_finished(tmp_path, change):
    _finish(FakeTask(backup="backup"), tmp_path / "run")
    assert task.finished_run(FakeTask(backup="backup"), tmp_path / "run", Config()) is not None
    fake, config = FakeTask(backup="backup"), Config()
    if change == "other_config":
        config = Config(size=4)
    elif change == "interrupted":
        (tmp_path / "run" / "backup").mkdir()
    else:
        fake = FakeTask()
    assert task.finished_run(fake, tmp_path / "run", config) is None


def test_a_failed_training_leaves_no_new_folder_and_an_earlier_run_as_it_was(tmp_path,
                                                                            monkeypatch):
    from hw1_keras import devices

    monkeypatch.setattr(devices, "setup", lambda device, name: devices_runtime())
    monkeypatch.setattr(devices, "check_batch", lambda batch, policy: None)
    with pytest.raises(InputError, match="diverged"):
        task.run(FakeTask(fail_training=True), Config(), str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()

    earlier = tmp_path / "earlier"
    task.run(FakeTask(), Config(), str(earlier))
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    with pytest.raises(InputError, match="diverged"):
        task.run(FakeTask(fail_training=True), Config(), str(earlier))
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


def devices_runtime():
    """A one-device runtime as `devices.setup` gives, without touching TensorFlow."""
    class Runtime:
        is_chief = True
        policy = None

        def record(self):
            return {"replicas": 1}

    return Runtime()
