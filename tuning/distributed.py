"""KerasTuner's chief/worker mode, for searches run in several stages.

KerasTuner distributes one search: a chief process runs the oracle behind a
gRPC server at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`, and workers
(`KERASTUNER_TUNER_ID` set to anything without "chief") ask it for trials. A
search in stages (random, then grid) needs one server per stage, or a worker
that finished stage 1 early would ask stage 1's oracle for stage 2's trials.
So stage s listens on port `KERASTUNER_ORACLE_PORT + s`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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
                         "port is used too, one per search stage)")
    return int(text)


@contextlib.contextmanager
def stage_port(stage: int, base: int | None):
    """Points KerasTuner at stage `stage`'s port for the duration of the block."""
    if base is None:
        yield
        return
    os.environ[PORT] = str(base + stage)
    try:
        yield
    finally:
        os.environ[PORT] = str(base)


def default_out(name: str, role: str, root: Path) -> Path:
    """A search's run folder when none is named: always the same, so a rerun resumes.

    Workers get one each (`<name>-<tuner id>`), so that workers on the chief's
    machine do not share its folder.
    """
    suffix = "" if role != "worker" else "-" + os.environ[TUNER_ID]
    return root / f"{name}{suffix}"
