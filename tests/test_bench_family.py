"""`bench tune --family` keeps each data set's result and resumes after an interruption."""

import argparse
import json

import pytest

from benchmarks import tune_family
from hw1_keras.errors import InputError


def _fake_result(member, folder, cv):
    errors = {"test_mse": 0.1, "test_mse_gaps": 0.2, "test_mse_outside": 0.05}
    tuned = {key: value / 2 for key, value in errors.items()}
    return {"name": member.name, "default": errors, "default_x5": errors, "tuned": tuned,
            "tuned_x5": errors, "seconds": 1.0,
            "choice": {"kept_default": False, "configuration": "units 8", "reason": "fake"}}


def _args(out, limit=3):
    return argparse.Namespace(out=str(out), cv="interior", limit=limit)


def test_a_rerun_measures_only_the_data_sets_not_yet_measured(tmp_path, monkeypatch, capsys):
    measured = []

    def run_member(member, folder, *, cv):
        measured.append(member.name)
        if len(measured) == 3:
            raise KeyboardInterrupt  # Stopped while measuring the third set.
        return _fake_result(member, folder, cv)

    monkeypatch.setattr(tune_family, "run_member", run_member)
    with pytest.raises(KeyboardInterrupt):
        tune_family.main(_args(tmp_path))
    assert sorted(path.name for path in (tmp_path / "sets").iterdir()) == ["00.json", "01.json"]

    measured.clear()
    summary = tune_family.main(_args(tmp_path))
    assert len(measured) == 1  # Only the third set.
    assert "resuming: 2 of 3 data sets" in capsys.readouterr().out
    assert summary["tally"] == {"win": 3, "tie": 0, "loss": 0}
    assert summary["geometric_mean"] == pytest.approx(0.5)
    assert summary["seconds"] == pytest.approx(3.0)  # The sets' own times, summed.


def test_results_of_another_budget_are_not_mixed_in(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_family, "run_member",
                        lambda member, folder, *, cv: _fake_result(member, folder, cv))
    tune_family.main(_args(tmp_path, limit=1))
    before = (tmp_path / "sets" / "00.json").read_text()
    with pytest.raises(InputError, match=r"another budget \(cv 'interior' -> 'random'\)"):
        tune_family.main(argparse.Namespace(out=str(tmp_path), cv="random", limit=1))
    assert (tmp_path / "sets" / "00.json").read_text() == before
    assert json.loads((tmp_path / "budget.json").read_text())["cv"] == "interior"
