"""benchmarks.suite (`bench tests`): turns taken, ratios pair by pair, a baseline clone, errors."""

import shutil
import subprocess
import types

import pytest

from benchmarks import suite
from conftest import REPO_ROOT, run_cli
from hw1_keras.errors import InputError

needs_git = pytest.mark.skipif(not (REPO_ROOT / ".git").exists() or shutil.which("git") is None,
                               reason="bench tests clones its baseline with git; this is no "
                                      "git checkout")


def test_the_checkouts_take_turns_and_the_ratio_is_taken_pair_by_pair(monkeypatch, capsys):
    calls = []
    # The machine slows down 2x half-way: run by run, this checkout stays at half.
    clock = iter([10.0, 20.0, 20.0, 40.0, 3.0, 4.0, 6.0, 8.0])

    def timer(folder, arguments):
        calls.append((folder.name, tuple(arguments)))
        return next(clock)

    monkeypatch.setattr(suite, "time_pytest", timer)
    monkeypatch.setattr(suite, "clone_at", lambda revision: REPO_ROOT.parent / "base")
    results = suite.main(types.SimpleNamespace(against="HEAD~1", runs=2))
    mine, base = REPO_ROOT.name, "base"
    assert calls == [(mine, ("--unit",)), (base, ("--unit",))] * 2 + [(mine, ()), (base, ())] * 2
    assert results["unit_tier_seconds"] == [10.0, 20.0]
    assert results["unit_tier_baseline_seconds"] == [20.0, 40.0]
    assert results["unit_tier_ratio_median"] == 0.5
    assert results["both_tiers_ratio_median"] == 0.75
    assert "0.50x, 0.50x  (median 0.50x)" in capsys.readouterr().out


def test_without_a_baseline_only_this_checkout_is_timed(monkeypatch):
    monkeypatch.setattr(suite, "time_pytest", lambda folder, arguments: 1.5)
    monkeypatch.setattr(suite, "clone_at", None)  # Would fail if called.
    results = suite.main(types.SimpleNamespace(against=None, runs=1))
    assert results == {"unit_tier_seconds": [1.5], "both_tiers_seconds": [1.5]}


@needs_git
def test_the_baseline_is_a_clone_of_that_commit_beside_this_checkout():
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    folder = suite.clone_at("HEAD")
    try:
        assert folder.parent == REPO_ROOT.parent  # So ../shared/data resolves alike.
        cloned = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert cloned == head and (folder / "run.py").is_file()
    finally:
        shutil.rmtree(folder)


@needs_git
def test_an_unknown_revision_is_one_line_and_clones_nothing(capsys, monkeypatch):
    def no_folder(**kwargs):
        raise AssertionError("a folder was made for the clone")

    monkeypatch.setattr(suite.tempfile, "mkdtemp", no_folder)
    assert run_cli("bench", "tests", "--against", "no-such-revision") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--against 'no-such-revision' names no commit" in error[0]


def test_the_tests_flags_belong_to_bench_tests_alone(capsys):
    assert run_cli("bench", "regression", "--runs", "2") == 2
    assert "--runs applies to bench tests, not bench regression" in capsys.readouterr().err


@pytest.mark.integration  # pytest in a subprocess.
def test_pytest_is_timed_in_the_checkout_and_a_failure_is_the_benchmarks_error():
    seconds = suite.time_pytest(REPO_ROOT, ["-n", "0", "tests/test_config.py"])
    assert seconds > 0
    with pytest.raises(InputError, match=r"failed in .* \(exit status 4\)"):
        suite.time_pytest(REPO_ROOT, ["-n", "0", "tests/no_such_file.py"])
