"""KerasTuner's chief/worker mode, on loopback only.

`regression --tune`'s three stages on a chief and two workers, as users run
it: every trial must run exactly once, on one of the workers, each grid point
once, both workers must get work, and the chief must choose among what they
reported. Then `tuning.distributed`'s pieces: a finished stage still
answering a late worker, and a worker waiting for its next stage or learning
that the chief is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time

import pytest

from conftest import consecutive_free_ports, run_tuner_cluster
from hw1_keras.cluster import free_ports
from hw1_keras.errors import InputError
from tuning import distributed

TIMEOUT = 150  # Seconds for the whole search; a normal run takes about 20.


@pytest.mark.integration
def test_regression_tune_runs_both_stages_on_a_chief_and_two_workers(tmp_path):
    # The command users run (README, "Distributed tuning"): the default's own
    # score, a random screen, then a grid around its winner, each stage on its
    # own port.
    from hw1_keras.cluster import RUN_PY

    argv = [sys.executable, RUN_PY, "regression", "--tune", "--trials", "2", "--folds", "2",
            "--epochs", "4", "--log-every", "2"]
    stdout = run_tuner_cluster({tuner_id: [*argv, "--out", tmp_path / tuner_id]
                                for tuner_id in ("chief", "worker0", "worker1")},
                               consecutive_free_ports(3), timeout=TIMEOUT)
    summary = json.loads((tmp_path / "chief" / "tuning.json").read_text())
    baseline, screen, grid = summary["stages"]
    assert len(baseline["trials"]) == 1 and len(screen["trials"]) == 2
    assert len(grid["trials"]) > 2
    trials = baseline["trials"] + screen["trials"] + grid["trials"]
    assert all(trial["status"] == "COMPLETED" for trial in trials)
    # Every trial ran on a worker, once; both workers got work; none stayed behind.
    ran = [sum(line.startswith("trial ") for line in stdout[worker].splitlines())
           for worker in ("worker0", "worker1")]
    assert sum(ran) == len(trials) and min(ran) >= 1, ran
    assert len({trial["trial_id"] for trial in grid["trials"]}) == len(grid["trials"])
    points = {tuple(sorted(trial["hyperparameters"].items())) for trial in grid["trials"]}
    assert len(points) == len(grid["trials"])  # Each grid point once.
    assert all("worker done" in stdout[worker] for worker in ("worker0", "worker1"))
    # The chief chose among the default's and the grid's trials.
    assert summary["winner"]["mean"] in [t["mean"] for t in baseline["trials"] + grid["trials"]]
    assert summary["choice"]["reason"] in stdout["chief"]
    assert (tmp_path / "chief" / "saved_model" / "saved_model.pb").exists()
    assert "So Far" not in stdout["chief"]  # No KerasTuner tables on the chief.


@pytest.fixture
def chief_env(monkeypatch):
    """KerasTuner's chief environment on a free loopback port; the port."""
    port = free_ports(1)[0]
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    # A client call that finds no server must fail the test, not wait an hour.
    from keras_tuner.src.distribute import oracle_client
    monkeypatch.setattr(oracle_client, "TIMEOUT", 20)
    yield port
    distributed.stop_servers()


def test_a_finished_stage_still_answers_a_late_worker(chief_env, tmp_path):
    import keras_tuner
    from keras_tuner.src.distribute.oracle_client import OracleClient

    space = keras_tuner.HyperParameters()
    space.Choice("units", [8])
    tuner = keras_tuner.GridSearch(lambda hp: None, objective=keras_tuner.Objective("score", "max"),
                                   hyperparameters=space, max_trials=1,
                                   directory=str(tmp_path), project_name="stage")
    chief = threading.Thread(target=distributed.search, args=(tuner,), daemon=True)
    chief.start()

    worker = OracleClient(tuner.oracle)
    trial = worker.create_trial("worker0")
    assert trial.status == "RUNNING"
    worker.update_trial(trial.trial_id, {"score": 1.0})
    trial.status = "COMPLETED"
    worker.end_trial(trial)
    assert worker.create_trial("worker0").status == "STOPPED"
    chief.join(timeout=10)
    assert not chief.is_alive()  # The stage is over: the chief goes on.

    # KerasTuner's own chief would have closed the port here, and this worker
    # would wait (an hour, as shipped) for an oracle that is gone.
    late = OracleClient(tuner.oracle)
    assert late.create_trial("worker1").status == "STOPPED"
    assert tuner.oracle.trials[trial.trial_id].score == 1.0


def test_a_worker_waits_for_its_stage_then_notices_a_chief_gone(monkeypatch, capsys):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    base = consecutive_free_ports(2)

    def listen(port):
        server = socket.socket()
        server.bind(("127.0.0.1", port))
        server.listen()
        return server

    # Nothing on stage 1's port nor stage 0's: the chief is gone.
    with pytest.raises(InputError, match="chief has stopped or finished"):
        distributed.wait_for_stage(1, base)
    # Nothing on stage 0's: the chief may start later, but not never.
    with pytest.raises(InputError, match=f"no chief's oracle at 127.0.0.1:{base} after 0 s"):
        distributed.wait_for_stage(0, base, poll_seconds=0.05, first_stage_timeout=0.2)
    capsys.readouterr()

    # Stage 0 still served, stage 1 opening a moment later: the worker waits for it.
    with listen(base), contextlib.ExitStack() as opened:
        threading.Timer(0.5, lambda: opened.enter_context(listen(base + 1))).start()
        started = time.monotonic()
        distributed.wait_for_stage(1, base, poll_seconds=0.05)
        assert time.monotonic() - started >= 0.4
        assert f"waiting for the chief's oracle for stage 2 at 127.0.0.1:{base + 1}" \
            in capsys.readouterr().out
        # Once open, no wait and nothing printed.
        distributed.wait_for_stage(1, base)
        assert capsys.readouterr().out == ""


def test_only_a_worker_waits_for_a_stage(monkeypatch):
    waited = []
    monkeypatch.setattr(distributed, "wait_for_stage", lambda *args: waited.append(args))
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    for tuner_id in ("chief", "worker3"):
        monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
        with distributed.stage_port(2, 8000):
            assert os.environ["KERASTUNER_ORACLE_PORT"] == "8002"
        assert os.environ["KERASTUNER_ORACLE_PORT"] == "8000"
    assert waited == [(2, 8000)]
    with distributed.stage_port(2, None):  # Not distributed: nothing to wait for.
        assert os.environ["KERASTUNER_ORACLE_PORT"] == "8000"


def test_a_chief_refuses_a_port_in_use(chief_env):
    with socket.socket() as taken:
        # As another gRPC server holds it: gRPC's default would share the port.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", chief_env))
        taken.listen()
        refused = []

        def chief():  # In a thread: were the port shared, it would serve for good.
            try:
                distributed.serve(oracle=None)
            except InputError as error:
                refused.append(str(error))

        thread = threading.Thread(target=chief, daemon=True)
        thread.start()
        thread.join(timeout=10)
    assert refused and f"cannot listen on 127.0.0.1:{chief_env}" in refused[0], refused
