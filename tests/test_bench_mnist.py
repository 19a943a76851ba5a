"""`run.py bench mnist`: what it reuses from an interrupted benchmark."""

from __future__ import annotations

import pytest

from hw1_keras import bench_mnist
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.runs import read_json, write_json


def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path, monkeypatch):
    out = tmp_path / "resume-reference"
    args = ["--data", "mnist.npz", "--epochs", "4", "--augmented-copy", "0", "--out", str(out)]
    out.mkdir()
    write_json(out / "config.json", to_dict(bench_mnist._resolved_config(args)))
    write_json(out / "metrics.json", {"test_accuracy": 0.99, "total_seconds": 12.0})

    def no_run(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench_mnist, "_run_cli", no_run)
    assert bench_mnist._timed_run(args) == ({"test_accuracy": 0.99, "total_seconds": 12.0}, 12.0)
    other = [*args[:3], "6", *args[4:]]  # An earlier benchmark's --resume-epochs 4, now 6.
    with pytest.raises(InputError, match=r"holds a run with other settings \(epochs 4 -> 6\)"):
        bench_mnist._timed_run(other)
    assert read_json(out / "metrics.json")["total_seconds"] == 12.0


def test_the_quick_preset_counts_in_the_settings():
    quick = bench_mnist._resolved_config(["--quick", "--data", "mnist.npz", "--out", "x"])
    assert (quick.epochs, quick.augmented_copy) == (3, 0)
