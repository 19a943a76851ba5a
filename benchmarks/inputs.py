"""`python run.py bench inputs`: how bad input is refused, and what a huge image costs.

Three figures, each from fresh processes:

* the bad-input battery (`tests/test_bad_inputs.py`): every case ends in one
  line and exit status 2 and leaves a finished run folder as it was;
* the seconds from `python run.py ...` to its one-line refusal of a bad input
  file, which is read before TensorFlow is imported;
* `predict`'s peak memory on a 12,500 x 12,500 image (a PNG, refused from its
  declared size; a JPEG, decoded at an eighth of its size), beside its peak
  on a 28 x 28 one (`--model`: an MNIST export; without it, this part is
  left out).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import REPO_ROOT, row, run_py_command
from hw1_keras.errors import InputError

HUGE = 12_500  # The image: 156 megapixels.
MEMORY_LIMIT_MB = 1_024  # What predict may take on it.


def battery() -> dict:
    """Runs the battery under pytest in a fresh process; its passed/failed/skipped counts."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_bad_inputs.py"], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {word: int(number) for number, word in
              re.findall(r"(\d+) (passed|failed|skipped|error|errors)", summary)}
    if not counts:
        raise InputError(f"the battery printed no pytest summary: {summary or result.stderr[-200:]!r}")
    return {"battery_passed": counts.get("passed", 0), "battery_failed": counts.get("failed", 0)
            + counts.get("error", 0) + counts.get("errors", 0),
            "battery_skipped": counts.get("skipped", 0)}


def bad_files(root: Path) -> dict[str, list[str]]:
    """Bad input files, each with the command that reads it."""
    np.savez(root / "rank0.npz", x_train=np.array(7, np.uint8), y_train=np.zeros(1, np.int64),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.int64))
    np.savez(root / "shape.npz", x_train=np.zeros((60, 27, 28), np.uint8),
             y_train=np.zeros(60, np.int64), x_test=np.zeros((1, 28, 28), np.uint8),
             y_test=np.zeros(1, np.int64))
    (root / "torn.npz").write_bytes(b"PK\x03\x04 torn")
    (root / "nan.csv").write_text("input,label\n1,2\n2,nan\n")
    os.mkfifo(root / "fifo")
    return {
        "npz, 0-d x_train": ["mnist", "--data", str(root / "rank0.npz")],
        "npz, 27x28 images": ["mnist", "--data", str(root / "shape.npz")],
        "npz, torn": ["mnist", "--data", str(root / "torn.npz")],
        "npz, a FIFO": ["mnist", "--data", str(root / "fifo")],
        "csv, a NaN label": ["regression", "--train", str(root / "nan.csv")],
        "csv, /dev/null": ["regression", "--train", "/dev/null"],
    }


def refusal_seconds(commands: dict[str, list[str]]) -> dict[str, float]:
    """Wall seconds of each `python run.py COMMAND` to its exit status 2."""
    seconds = {}
    for label, arguments in commands.items():
        start = time.perf_counter()
        result = subprocess.run(run_py_command(arguments),
                                capture_output=True, text=True)
        seconds[label] = time.perf_counter() - start
        lines = result.stderr.strip().splitlines()
        if result.returncode != 2 or len(lines) != 1:
            raise InputError(f"run.py {' '.join(arguments)} exited with {result.returncode} "
                             f"and {len(lines)} lines on stderr; expected 2 and one line")
    return seconds


def peak_memory_mb(arguments: list[str]) -> tuple[int, float]:
    """`python run.py ARGUMENTS`'s exit status and peak resident memory, in MB."""
    process = subprocess.Popen(run_py_command(arguments),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024  # Linux reports KiB.


def images(root: Path) -> dict[str, Path]:
    """A 28 x 28 digit and a 12,500 x 12,500 page as a PNG and as a JPEG."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # A "1".
    Image.fromarray(digit).save(root / "small.png")
    page = np.full((HUGE, HUGE), 230, np.uint8)  # Light paper, dark ink.
    page[2_000:10_500, 5_500:7_000] = 20
    big = Image.fromarray(page)
    big.save(root / "huge.png", compress_level=1)
    big.save(root / "huge.jpg", quality=80)
    return {"28 x 28 PNG": root / "small.png", f"{HUGE:,} x {HUGE:,} PNG": root / "huge.png",
            f"{HUGE:,} x {HUGE:,} JPEG": root / "huge.jpg"}


def main(args) -> dict:
    """Prints the battery's counts, the refusal times, and predict's memory on huge images."""
    results: dict = {}
    print("bad input: the battery (tests/test_bad_inputs.py), in a fresh pytest", flush=True)
    results.update(battery())
    row("cases passed / failed / skipped", f"{results['battery_passed']} / "
        f"{results['battery_failed']} / {results['battery_skipped']}")
    with tempfile.TemporaryDirectory(prefix="hw1-bench-inputs-") as folder:
        root = Path(folder)
        print("seconds from `python run.py ...` to its one-line refusal (exit status 2)",
              flush=True)
        seconds = refusal_seconds(bad_files(root))
        for label, value in seconds.items():
            row(label, f"{value:.2f} s")
        results["refusal_seconds"] = seconds
        results["refusal_seconds_max"] = max(seconds.values())
        row("slowest", f"{results['refusal_seconds_max']:.2f} s (target 1 s)")
        if not args.model:
            print("predict's memory: left out (pass --model RUN/saved_model or RUN/model.onnx)")
            return results
        print(f"predict --model {args.model}: peak resident memory", flush=True)
        memory = {}
        for label, path in images(root).items():
            status, megabytes = peak_memory_mb(["predict", "--model", args.model, str(path)])
            memory[label] = {"exit_status": status, "peak_mb": megabytes}
            row(label, f"{megabytes:,.0f} MB, exit status {status}"
                + (" (refused)" if status == 2 else ""))
        results["predict_memory"] = memory
        results["predict_memory_max_mb"] = max(m["peak_mb"] for m in memory.values())
        row("largest", f"{results['predict_memory_max_mb']:,.0f} MB "
            f"(target {MEMORY_LIMIT_MB:,} MB)")
    return results
