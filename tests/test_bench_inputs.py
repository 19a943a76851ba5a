"""benchmarks.inputs: its bad files are refused in one line, and the battery's summary is read."""

import subprocess
import types

import pytest

from benchmarks import inputs
from hw1_keras.errors import InputError


@pytest.mark.integration  # run.py in subprocesses.
def test_every_bad_file_of_the_benchmark_is_refused_in_one_line(tmp_path):
    commands = inputs.bad_files(tmp_path)
    seconds = inputs.refusal_seconds(commands)  # Raises unless exit status 2, one line.
    assert list(seconds) == list(commands) and all(value > 0 for value in seconds.values())


@pytest.mark.integration
def test_a_command_that_is_not_refused_is_the_benchmarks_error(tmp_path):
    with pytest.raises(InputError, match=r"exited with 0 and 0 lines on stderr; expected 2"):
        inputs.refusal_seconds({"help": ["--help"]})


@pytest.mark.parametrize("summary, counts", [
    ("128 passed in 80.1s", (128, 0, 0)),
    ("1 failed, 125 passed, 2 skipped in 90s", (125, 1, 2)),
    ("3 passed, 1 error in 4s", (3, 1, 0)),
])
def test_the_battery_counts_come_from_pytests_summary(summary, counts, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: types.SimpleNamespace(
        stdout=f"....\n{summary}\n", stderr=""))
    result = inputs.battery()
    assert (result["battery_passed"], result["battery_failed"],
            result["battery_skipped"]) == counts
