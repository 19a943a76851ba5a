"""Shared fixtures: the repo root on sys.path, quiet TensorFlow, one tiny run, the tiers.

Two tiers. The unit tier (`python -m pytest --unit`) runs in this process on
tiny tensors, for the edit-test loop; a test of it that starts a process fails
(`_unit_tests_start_no_process`). The integration tier is every test that
starts `run.py` or a cluster in subprocesses, reads real MNIST, or runs a
whole command or several whole trainings in this process: those that use the
`cli`, `mnist_file` or `tiny_run` fixtures are marked `integration` by
themselves, the rest by `@pytest.mark.integration`. The default command
runs both; `-m slow` the long accuracy runs.

The expensive artifact (a trained run folder with a SavedModel) is built once
per session by `tiny_run` and shared, read-only, by the run, export and CLI
tests. Tests that need to modify a run folder copy it first.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One xdist worker per core already keeps every core busy: one compute
    # thread per TensorFlow (the worker's and the runs it starts, which inherit
    # this) instead of each pool spinning on all cores against the others.
    # Inter-op threads stay as they are: collective ops need more than one.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

# The tiny configuration every shared run uses: 20 epochs, 2 compiled calls.
TINY = {"epochs": 20, "log_every": 10}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_config():
    from hw1_keras.regression.config import RegressionConfig

    return RegressionConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config):
    """One tiny embedded-data run: `(run_dir, metrics)`. Treat it as read-only."""
    from hw1_keras.regression.train import run

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    metrics = run(tiny_config, str(run_dir))
    return run_dir, metrics


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # As a user runs it: the CLI quiets TensorFlow itself, but only when the user
    # has not set TF_CPP_MIN_LOG_LEVEL (this process sets it for the in-process tests).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "run.py", *map(str, args)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def run_cli(*argv) -> int:
    """`python run.py ARGS...` in this process, TensorFlow and all; the exit status.

    For cases that need no process of their own (no `--cpu-devices`, no kill,
    no cluster): the TensorFlow this process imported once serves them all,
    where a subprocess per case pays about 6 CPU-seconds to start.
    """
    from hw1_keras import cli as cli_module

    try:
        return cli_module.main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse's errors.
        return exit_.code


def in_this_process(*argv) -> subprocess.CompletedProcess:
    """`run_cli`, with what it printed: as `subprocess.run(..., capture_output=True)` returns."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_cli(*argv)
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    """Runs `python run.py ARGS...` from the repo root; returns the CompletedProcess."""
    return _run_cli


MNIST_FILE = REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
MNIST_VARIABLE = "HW1_MNIST"  # A path to an .npz laid out as Keras' mnist.npz.
# Keras' own download, when online, lands in its cache.
KERAS_MNIST = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
INTEGRATION_FIXTURES = {"cli", "mnist_file", "tiny_run"}


def pytest_addoption(parser):
    parser.addoption("--unit", action="store_true",
                     help="the unit tier only: no subprocesses, no MNIST file (seconds)")


def pytest_collection_modifyitems(config, items):
    unit_only = config.getoption("--unit")
    kept, dropped = [], []
    for item in items:
        if INTEGRATION_FIXTURES & set(item.fixturenames) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)
        (dropped if unit_only and item.get_closest_marker("integration") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request, monkeypatch):
    """Keeps the unit tier what it says: a test starting Python in a process must be
    marked `integration` (system tools such as `mount` take milliseconds and may run)."""
    if request.node.get_closest_marker("integration"):
        return
    start = subprocess.Popen.__init__

    def checked(self, args, *rest, **kwargs):
        program = str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
        if program == sys.executable or Path(program).name.startswith("python"):
            raise AssertionError(f"{request.node.nodeid} starts Python in a process: mark it "
                                 "@pytest.mark.integration")
        start(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", checked)


def _online(host: str = "storage.googleapis.com") -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def find_mnist() -> tuple[Path | None, list[str]]:
    """The real MNIST file: `$HW1_MNIST`, ../shared/data, Keras' cache, or Keras' download.

    Returns the path found (None if none) and where it looked, for the skip's reason.
    """
    looked = []
    candidates = [Path(os.environ[MNIST_VARIABLE])] if os.environ.get(MNIST_VARIABLE) else []
    if not candidates:
        looked.append(f"${MNIST_VARIABLE} (not set)")
    for path in (*candidates, MNIST_FILE, KERAS_MNIST):
        if path.is_file():
            return path, looked
        looked.append(str(path))
    if _online():
        import keras

        keras.datasets.mnist.load_data()  # Downloads into Keras' cache.
        if KERAS_MNIST.is_file():
            return KERAS_MNIST, looked
    looked.append("Keras' download (offline)")
    return None, looked


@pytest.fixture(scope="session")
def mnist_file() -> str:
    """The real MNIST file (`find_mnist`); the test skips, saying where it looked, if none."""
    path, looked = find_mnist()
    if path is None:
        pytest.skip("real MNIST not found; looked at " + ", ".join(looked)
                    + f"; set {MNIST_VARIABLE}=PATH.npz")
    return str(path)


def write_mnist_slice(mnist_file: str, path: Path, train: int, test: int) -> str:
    """The first `train` training and `test` test images of MNIST, as an .npz at `path`."""
    import numpy as np

    with np.load(mnist_file) as archive:
        np.savez(path, x_train=archive["x_train"][:train], y_train=archive["y_train"][:train],
                 x_test=archive["x_test"][:test], y_test=archive["y_test"][:test])
    return str(path)


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory, mnist_file) -> str:
    """A 1,200 + 300 image slice of MNIST: enough for short runs to learn something."""
    return write_mnist_slice(mnist_file, tmp_path_factory.mktemp("mnist") / "small.npz",
                             train=1200, test=300)


def run_tuner_cluster(commands: dict[str, list], port: int, timeout: float) -> dict[str, str]:
    """Runs a KerasTuner chief and workers on loopback; their stdout by tuner id.

    Each command starts with its key as `KERASTUNER_TUNER_ID` and the oracle at
    127.0.0.1:`port`. Waits for all of them, kills any left running (a failed
    test must not leave an oracle server behind), and asserts each exited 0.
    """
    processes = {}
    try:
        for tuner_id, argv in commands.items():
            env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id,
                   "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port),
                   "TF_CPP_MIN_LOG_LEVEL": "3"}
            processes[tuner_id] = subprocess.Popen([str(part) for part in argv], env=env,
                                                   text=True, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)
        outputs = {tuner_id: process.communicate(timeout=timeout)
                   for tuner_id, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for tuner_id, (_, stderr) in outputs.items():
        assert processes[tuner_id].returncode == 0, f"{tuner_id}: {stderr[-3000:]}"
    return {tuner_id: stdout for tuner_id, (stdout, _) in outputs.items()}


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError("no consecutive free ports found")
