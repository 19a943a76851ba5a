"""KerasTuner's chief/worker mode with the k-fold tuner, on loopback only.

A chief and two workers (`tests/distributed_search.py`) share a 4-point grid:
every trial must run exactly once, on one of the workers, both workers must get
work, and the chief must report the best of what they reported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_search.py")
WORKERS = 2
TRIALS = 4  # learning_rate {1e-3, 3e-3} x batch_size {25, 50}
TIMEOUT = 150  # Seconds for the whole search; a normal run takes about 20.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(tuner_id: str, port: int, folder: Path) -> subprocess.Popen:
    env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(port), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(folder), str(WORKERS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_chief_and_two_workers_share_a_kfold_grid(tmp_path):
    port = free_port()
    processes = []
    try:
        processes.append(start("chief", port, tmp_path))
        processes += [start(f"worker{i}", port, tmp_path) for i in range(WORKERS)]
        outputs = [process.communicate(timeout=TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]

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

    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert sorted(chief["trials"]) == sorted(ids)
    assert all(trial["status"] == "COMPLETED" for trial in chief["trials"].values())
    best = min(ran, key=lambda record: record["metrics"]["val_mse"])
    assert chief["best"]["trial_id"] == best["trial_id"]
    assert chief["best"]["score"] == pytest.approx(best["metrics"]["val_mse"])
    assert chief["best"]["values"] == best["values"]
    # Each worker printed its own line per trial.
    for i, (stdout, _) in enumerate(outputs[1:]):
        lines = [line for line in stdout.splitlines() if line.startswith("trial ")]
        assert len(lines) == per_worker[f"worker{i}"]
