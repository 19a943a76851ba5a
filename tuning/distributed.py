"""KerasTuner's chief/worker mode, for searches run in several stages.

KerasTuner distributes one search: a chief process runs the oracle behind a
gRPC server at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`, and workers
(`KERASTUNER_TUNER_ID` set to anything without "chief") ask it for trials. A
search in stages (random, then grid) needs one server per stage, or a worker
that finished stage 1 early would ask stage 1's oracle for stage 2's trials.
So stage s listens on port `KERASTUNER_ORACLE_PORT + s`.

KerasTuner's chief shuts a search's server down once every worker it has
heard from is told to stop. Between stages that strands a worker: one that
reaches stage s a moment late (gRPC's reconnect backoff alone can add a
minute) finds the other workers have already finished it, and then waits an
hour on a port nobody serves. So here the chief keeps each finished stage's
server answering "stopped" for as long as it lives (`serve`), and a worker
waits for its next stage's port itself, polling, instead of through gRPC's
backoff (`stage_port`). A worker that finds both its next and its last stage's
ports closed knows the chief is gone, and says so.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import time
from pathlib import Path

from hw1_keras import compat
from hw1_keras.errors import InputError

IP = "KERASTUNER_ORACLE_IP"
PORT = "KERASTUNER_ORACLE_PORT"
TUNER_ID = "KERASTUNER_TUNER_ID"


def role() -> str:
    """"single" (no chief configured), "chief" or "worker", from the environment."""
    if IP not in os.environ:
        return "single"
    missing = [name for name in (PORT, TUNER_ID) if not os.environ.get(name)]
    if missing:
        raise InputError(f"{IP} is set but {' and '.join(missing)} is not; distributed "
                         f"tuning needs {IP}, {PORT} and {TUNER_ID} (see README)")
    return "chief" if "chief" in os.environ[TUNER_ID] else "worker"


def base_port() -> int | None:
    """The configured port (stage 0's), or None when not distributed."""
    if role() == "single":
        return None
    text = os.environ[PORT]
    if not text.isdigit() or not 0 < int(text) < 65535:
        raise InputError(f"{PORT}={text!r}; expected a port number below 65535 (the next "
                         "ports are used too, one per search stage)")
    return int(text)


@contextlib.contextmanager
def stage_port(stage: int, base: int | None):
    """Points KerasTuner at stage `stage`'s port for the duration of the block.

    Build the stage's tuner inside the block (a worker's `OracleClient` reads
    the port when it is made). On a worker, the block starts once the chief
    serves the stage (`wait_for_stage`).
    """
    if base is None:
        yield
        return
    if role() == "worker":
        wait_for_stage(stage, base)
    os.environ[PORT] = str(base + stage)
    try:
        yield
    finally:
        os.environ[PORT] = str(base)


def wait_for_stage(stage: int, base: int, poll_seconds: float = 0.2,
                   first_stage_timeout: float = 3600) -> None:
    """Returns once the chief serves stage `stage` (its port accepts connections).

    A later stage may take as long as the other workers' trials of the stage
    before it; the first waits at most `first_stage_timeout` seconds (as long
    as KerasTuner's own client waits) for the chief to start.

    Raises:
        InputError: The chief's address does not resolve; or stage
            `stage - 1`'s port has closed too (the chief keeps every stage it
            served open while it lives, so it has stopped or finished); or
            the first stage never opened.
    """
    address = os.environ[IP]
    try:
        socket.getaddrinfo(address, base + stage)
    except socket.gaierror:
        raise InputError(f"{IP}={address!r} is not an address this machine can resolve; "
                         "set it to the chief's IP address or host name") from None
    started = time.monotonic()
    announced = False
    while not _accepts(address, base + stage):
        if stage > 0 and not _accepts(address, base + stage - 1):
            raise InputError(
                f"the chief's oracle for stage {stage + 1} ({address}:{base + stage}) is not "
                f"open and stage {stage}'s ({address}:{base + stage - 1}) has closed: the "
                "chief has stopped or finished; if its search was not done, start the "
                "workers again together with it (a rerun resumes)")
        if stage == 0 and time.monotonic() - started > first_stage_timeout:
            raise InputError(
                f"no chief's oracle at {address}:{base} after {first_stage_timeout:.0f} s; "
                f"start the chief (KERASTUNER_TUNER_ID=chief) or check {IP} and {PORT}")
        if not announced:
            announced = True
            print(f"waiting for the chief's oracle for stage {stage + 1} at "
                  f"{address}:{base + stage}", flush=True)
        time.sleep(poll_seconds)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


# The stages' servers, kept alive until the process exits (see the module doc).
_SERVERS: list = []


@atexit.register
def stop_servers() -> None:
    """Stops the servers `serve` left answering; runs at exit."""
    while _SERVERS:
        _SERVERS.pop().stop(None)


def search(tuner, *fit_args, **fit_kwargs) -> None:
    """`tuner.search(...)` for one stage of a staged search; see the module doc.

    On the chief, KerasTuner's `search` serves the oracle through
    `oracle_chief.start_server`; for the call, that is replaced by `serve`.
    """
    with compat.whole_state_files():  # A full disk must not leave a search unresumable.
        if role() != "chief":
            tuner.search(*fit_args, **fit_kwargs)
            return
        with compat.oracle_server(serve):
            tuner.search(*fit_args, **fit_kwargs)


def serve(oracle) -> None:
    """Serves `oracle` until its search is done, then leaves it answering.

    KerasTuner's `oracle_chief.start_server` with three differences: it sees
    the search end within a second (KerasTuner polls every 20 s); the server
    stays up afterwards, until the process exits, telling a late worker
    "stopped"; and a port already in use is an error, not shared (gRPC's
    default `SO_REUSEPORT` would let an old chief's finished stages answer a
    new cluster's workers).
    """
    import grpc
    from concurrent import futures

    address = f"{os.environ[IP]}:{os.environ[PORT]}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                         options=[("grpc.so_reuseport", 0)])
    servicer = compat.oracle_servicer(oracle, server)
    try:
        server.add_insecure_port(address)
    except RuntimeError:
        raise InputError(f"the chief cannot listen on {address} (in use, or not this "
                         f"machine's address); free the port or set another {PORT} (the "
                         "ports after it serve the later stages)") from None
    server.start()
    _SERVERS.append(server)
    # Done once a worker was told to stop and every worker it served has been.
    while not compat.oracle_done(servicer, oracle):
        time.sleep(1)


def default_out(name: str, role: str, root: Path) -> Path:
    """A search's run folder when none is named: always the same, so a rerun resumes.

    Workers get one each (`<name>-<tuner id>`), so that workers on the chief's
    machine do not share its folder.
    """
    suffix = "" if role != "worker" else "-" + os.environ[TUNER_ID]
    return root / f"{name}{suffix}"
