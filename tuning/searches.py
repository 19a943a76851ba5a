"""What both searches set up the same way: their folder, their role, their ports, their end.

`regression --tune` and `mnist --tune` differ in what they search
(`tuning.regression`, `tuning.mnist_studies`); around that, both
1. take their role from KerasTuner's chief/worker environment variables
   (`tuning.distributed`): one process alone, a chief serving the trials, or
   a worker running them;
2. open one run folder, the same every time (`runs/<task>-tune`), whose
   `tuning/` holds KerasTuner's projects, so that the same command resumes
   and a changed one is refused unless `--fresh` (`tuning.resume`);
3. run their stages one oracle each, stage i served on the base port + i;
4. end the same way: a worker stops (`worker_result`), the chief (or the
   lone process) trains the choice and exports it exactly like a plain run
   (`hw1_keras.task.train_and_export`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import NamedTuple

from hw1_keras.runs import RUNS_ROOT, make_run_dir
from tuning import distributed, resume

TUNING_DIR = "tuning"  # KerasTuner's projects, inside the run folder.


class SearchFolder(NamedTuple):
    """Where a search runs and in which role (`open_search`)."""

    run_dir: Path
    tuning_dir: Path  # KerasTuner's projects (`TUNING_DIR`).
    role: str  # "single", "chief" or "worker" (`tuning.distributed.role`).
    port: int | None  # The first stage's oracle port; None when not distributed.
    resuming: bool  # The folder holds this search's earlier trials.

    def stage(self, index: int) -> contextlib.AbstractContextManager:
        """The oracle port of stage `index` (`tuning.distributed.stage_port`)."""
        return distributed.stage_port(index, self.port)

    def notes(self, stage: str) -> str:
        """The end of a search's first line: whether it resumes, and its role."""
        return ((" (resuming; --fresh starts over)" if self.resuming else "")
                + ("" if self.role == "single"
                   else f"  ({self.role}, oracle port {self.port} + {stage})"))


def open_search(name: str, out: str | None, identity: dict, fresh: bool) -> SearchFolder:
    """Opens (or resumes) a search's run folder; raises `InputError` if it holds another search.

    Args:
        name: The search, and its default folder under `runs/`: "regression-tune".
        out: `--out` (default: `runs/<name>`, or a folder per worker).
        identity: Everything that makes a search a different one (its
            settings and base configuration): a rerun with the same one resumes.
        fresh: `--fresh`: start over, discarding the folder's trials.
    """
    role = distributed.role()
    folder = Path(out) if out else distributed.default_out(name, role, RUNS_ROOT)
    resuming = resume.check_resumable(folder / TUNING_DIR, identity, fresh)
    run_dir = make_run_dir(str(folder), name)
    tuning_dir = resume.open_search_dir(run_dir / TUNING_DIR, identity, fresh)
    return SearchFolder(run_dir, tuning_dir, role, distributed.base_port(), resuming)


def worker_result(folder: SearchFolder, after: str) -> dict:
    """A worker's end of a search: its last line, then its result, the run folder only.

    The chief holds the trials' results; it trains and exports the choice
    exactly like a plain run (`hw1_keras.task.train_and_export`).

    Args:
        folder: The search's folder and role.
        after: What the chief does next, for the line.
    """
    print(f"worker done; the chief {after}")
    return {"run_dir": str(folder.run_dir)}
