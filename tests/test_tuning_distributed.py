"""KerasTuner's chief/worker mode with the k-fold tuner, on loopback only.

A chief and two workers (`tests/distributed_search.py`) share a 4-point grid:
every trial must run exactly once, on one of the workers, both workers must get
work, and the chief must report the best of what they reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import run_tuner_cluster
from hw1_keras.cluster import free_ports

SCRIPT = Path(__file__).with_name("distributed_search.py")
WORKERS = 2
TRIALS = 4  # learning_rate {1e-3, 3e-3} x batch_size {25, 50}
TIMEOUT = 150  # Seconds for the whole search; a normal run takes about 20.


def test_chief_and_two_workers_share_a_kfold_grid(tmp_path):
    command = [sys.executable, SCRIPT, tmp_path, WORKERS]
    tuner_ids = ["chief", *(f"worker{i}" for i in range(WORKERS))]
    stdout = run_tuner_cluster({tuner_id: command for tuner_id in tuner_ids},
                               free_ports(1)[0], timeout=TIMEOUT)

    ran = [json.loads(line) for i in range(WORKERS)
           for line in (tmp_path / f"worker{i}.jsonl").read_text().splitlines()]
    ids = [record["trial_id"] for record in ran]
    assert len(ids) == len(set(ids)) == TRIALS  # Every trial exactly once.
    values = {tuple(sorted(record["values"].items())) for record in ran}
    assert len(values) == TRIALS  # ... and each one a different grid point.
    per_worker = {f"worker{i}": sum(r["tuner"] == f"worker{i}" for r in ran)
                  for i in range(WORKERS)}
    assert all(count >= 1 for count in per_worker.values()), per_worker
    assert not (tmp_path / "chief.jsonl").exists()  # The chief only serves.

    chief = json.loads(stdout["chief"].strip().splitlines()[-1])
    assert sorted(chief["trials"]) == sorted(ids)
    assert all(trial["status"] == "COMPLETED" for trial in chief["trials"].values())
    best = min(ran, key=lambda record: record["metrics"]["val_mse"])
    assert chief["best"]["trial_id"] == best["trial_id"]
    assert chief["best"]["score"] == pytest.approx(best["metrics"]["val_mse"])
    assert chief["best"]["values"] == best["values"]
    # Each worker printed its own line per trial.
    for i in range(WORKERS):
        lines = [line for line in stdout[f"worker{i}"].splitlines() if line.startswith("trial ")]
        assert len(lines) == per_worker[f"worker{i}"]
