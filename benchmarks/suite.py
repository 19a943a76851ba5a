"""`python run.py bench tests`: how long the README's test commands take, against a baseline.

Times `python -m pytest -q --unit` (the unit tier) and `python -m pytest -q`
(both tiers, what CI runs) as whole processes, in this checkout as it is
(uncommitted edits included) and, with `--against REV`, in a clone of REV
made beside this checkout (so `../shared/data` resolves alike). The two
alternate, this checkout first: this, REV, this, REV... so that the machine's
speed, which drifts by up to 2x here, hits both alike; the ratio is taken pair
by pair and its median quoted.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from benchmarks.common import REPO_ROOT, last_line, row
from hw1_keras.errors import InputError

# Each tier's pytest arguments after `python -m pytest -q` (README, "Development").
TIERS = {"unit tier": ["--unit"], "both tiers": []}


def clone_at(revision: str, repo: Path = REPO_ROOT) -> Path:
    """A fresh clone of `repo` at `revision`, in a new folder beside `repo`.

    Raises:
        InputError: `repo` is no git checkout, or `revision` names no commit of it.
    """
    found = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                            f"{revision}^{{commit}}"], capture_output=True, text=True)
    if found.returncode != 0:
        raise InputError(f"--against {revision!r} names no commit of {repo}; pass a commit, "
                         "tag or branch (git log --oneline lists them)")
    folder = Path(tempfile.mkdtemp(prefix=".bench-tests-", dir=repo.parent))
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(repo), str(folder)],
                   check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "--quiet", found.stdout.strip()],
                   check=True)
    return folder


def time_pytest(checkout: Path, arguments: list[str]) -> float:
    """Wall seconds of `python -m pytest -q ARGUMENTS` run in `checkout`.

    Raises:
        InputError: pytest failed there (its last line says how).
    """
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", *arguments], cwd=checkout,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise InputError(f"python -m pytest -q {' '.join(arguments)} failed in {checkout} "
                         f"(exit status {result.returncode}): {last_line(result.stdout)}")
    return seconds


def alternate(checkouts: dict[str, Path], arguments: list[str], runs: int,
              timer: Callable[[Path, list[str]], float] | None = None) -> dict[str, list[float]]:
    """Each checkout's seconds for `runs` runs, taken in turn (A B A B ...).

    Args:
        checkouts: Name -> folder to run pytest in.
        arguments: pytest's arguments after `-q`.
        runs: Runs of each checkout.
        timer: `(folder, arguments) -> seconds`; default `time_pytest`.
    """
    timer = timer or time_pytest
    seconds: dict[str, list[float]] = {name: [] for name in checkouts}
    for _ in range(runs):
        for name, checkout in checkouts.items():
            seconds[name].append(timer(checkout, arguments))
    return seconds


def pair_ratios(mine: list[float], theirs: list[float]) -> list[float]:
    """This checkout's time over the baseline's, run by run."""
    return [a / b for a, b in zip(mine, theirs)]


def main(args) -> dict:
    """Times both tiers `args.runs` times, against `args.against` when given."""
    checkouts = {"this checkout": REPO_ROOT}
    baseline = clone_at(args.against) if args.against else None
    if baseline is not None:
        checkouts[args.against] = baseline
    results: dict = {}
    try:
        for tier, arguments in TIERS.items():
            print(f"{tier}: python -m pytest -q {' '.join(arguments)}".rstrip(), flush=True)
            seconds = alternate(checkouts, arguments, args.runs)
            for name, values in seconds.items():
                row(f"{name}, seconds", ", ".join(f"{value:.1f}" for value in values)
                    + f"  (median {statistics.median(values):.1f})")
            key = tier.replace(" ", "_")
            results[f"{key}_seconds"] = seconds["this checkout"]
            if baseline is not None:
                ratios = pair_ratios(seconds["this checkout"], seconds[args.against])
                row(f"this / {args.against}, pair by pair",
                    ", ".join(f"{ratio:.2f}x" for ratio in ratios)
                    + f"  (median {statistics.median(ratios):.2f}x)")
                results[f"{key}_baseline_seconds"] = seconds[args.against]
                results[f"{key}_ratio_median"] = statistics.median(ratios)
    finally:
        if baseline is not None:
            shutil.rmtree(baseline, ignore_errors=True)
    return results
