"""A multi-worker cluster on one machine: worker processes on 127.0.0.1.

For trying `--distribute multiworker` without several machines, and for the
test and benchmark that check it: each worker is `python run.py ...` with its
own `TF_CONFIG`, on ports picked free, and every process is stopped when the
call returns, whatever happened.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
FINGERPRINT = "final weights sha256 "


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def tf_config(ports: list[int], index: int) -> str:
    """The `TF_CONFIG` of worker `index` in a cluster of workers on `ports`."""
    return json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    })


@dataclass
class Worker:
    """One finished worker process."""

    index: int
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def fingerprint(self) -> str | None:
        """The final-weights SHA-256 the worker printed, if any."""
        for line in self.stdout.splitlines():
            if FINGERPRINT in line:
                return line.split(FINGERPRINT, 1)[1].strip()
        return None


def run_workers(arguments: list[str], count: int = 2, timeout: float = 120,
                outs: list[str] | None = None) -> list[Worker]:
    """Runs `python run.py ARGUMENTS --distribute multiworker` as `count` local workers.

    Args:
        arguments: The task and its flags, e.g. `["regression", "--epochs", "200"]`.
        count: Workers; worker 0 is the chief.
        timeout: Seconds for all of them; the stragglers are killed after.
        outs: Per-worker `--out` folders (default: none given).

    Returns:
        The workers, in index order (`returncode` None when killed).
    """
    ports = free_ports(count)
    environment = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    processes = []
    started = time.perf_counter()
    try:
        for index in range(count):
            out = ["--out", outs[index]] if outs else []
            processes.append(subprocess.Popen(
                [sys.executable, str(RUN_PY), *arguments, "--distribute", "multiworker", *out],
                env={**environment, "TF_CONFIG": tf_config(ports, index)},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
        results = []
        for index, process in enumerate(processes):
            left = max(1.0, timeout - (time.perf_counter() - started))
            try:
                stdout, stderr = process.communicate(timeout=left)
                code = process.returncode
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
                code = None
            results.append(Worker(index, code, stdout, stderr, time.perf_counter() - started))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
