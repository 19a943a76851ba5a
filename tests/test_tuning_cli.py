"""`python run.py regression --tune` on a tiny budget: files, resume, flags and errors."""

from __future__ import annotations

import json
import math

import pytest

from hw1_keras.cli import main
from hw1_keras.regression.config import RegressionConfig
from tuning.settings import TuneSettings
from test_cli import assert_single_line, assert_user_error

# Whole searches, in this process.
pytestmark = pytest.mark.integration

# 2 screening trials x 2 folds at 1 epoch, then a grid of 2 (batch sizes) x 2 folds
# at 4 epochs (with the grid factors narrowed to 1 by `small_grid`).
def tiny(trials=2):
    return ["--tune", "--trials", str(trials), "--folds", "2", "--epochs", "4", "--log-every", "2"]


@pytest.fixture
def small_grid(monkeypatch):
    import tuning.regression_space

    monkeypatch.setattr(tuning.regression_space, "GRID_FACTORS", (1.0,))


def trial_lines(text):
    return [line for line in text.splitlines() if line.startswith("trial ")]


def test_tune_end_to_end_then_resume(tmp_path, capsys, small_grid):
    out = tmp_path / "run"
    assert main(["regression", *tiny(), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert len(trial_lines(first)) == 1 + 2 + 1

    summary = json.loads((out / "tuning.json").read_text())
    baseline, screen, grid = summary["stages"]
    assert [(stage["name"], len(stage["trials"]), stage["folds"], stage["epochs"], stage["cv"])
            for stage in summary["stages"]] == [
        ("baseline", 1, 2, 4, "interior"), ("screen", 2, 2, 1, "interior"),
        ("grid", 1, 2, 4, "interior")]
    for trial in baseline["trials"] + screen["trials"] + grid["trials"]:
        assert trial["status"] == "COMPLETED"
        assert len(trial["fold_scores"]) == 2 and trial["seconds"] > 0
        assert trial["mean"] == pytest.approx(sum(trial["fold_scores"]) / 2)
    # The grid keeps the screen's best architecture and batch size.
    best_screen = min(screen["trials"], key=lambda t: t["mean"])["hyperparameters"]
    assert {key: grid["trials"][0]["hyperparameters"][key]
            for key in ("depth", "units_1", "batch_size")} == \
        {key: best_screen[key] for key in ("depth", "units_1", "batch_size")}
    # The choice is between the own configuration and the grid, and says why.
    choice = summary["choice"]
    assert choice["baseline"] == "baseline/" + baseline["trials"][0]["trial_id"]
    assert choice["winner"] in (choice["baseline"], "grid/" + grid["trials"][0]["trial_id"])
    assert choice["winner"] in choice["within_noise"] and choice["best"] in choice["within_noise"]
    assert choice["reason"] in first and choice["standard_error"] >= 0
    winner = summary["winner"]["hyperparameters"]
    # Exported like a plain run, with the winner's configuration.
    for name in ("metrics.json", "config.json", "fit.png", "loss.png", "weights.png",
                 "tuning.png", "saved_model/saved_model.pb"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["batch_size"] == winner["batch_size"]
    assert metrics["config"]["learning_rate"] == winner["learning_rate"]
    assert metrics["config"]["epochs"] == 4
    assert metrics["tuning"]["winner_cv_val_mse"] == pytest.approx(summary["winner"]["mean"])
    assert metrics["tuning"]["reason"] == choice["reason"]

    # The same command again resumes: every trial is finished, none runs again.
    assert main(["regression", *tiny(), "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert trial_lines(second) == []
    assert json.loads((out / "tuning.json").read_text())["winner"] == summary["winner"]

    # Other settings in the same folder: refused, untouched, until --fresh.
    assert main(["regression", *tiny(trials=1), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "--fresh" in error and "search" in error and len(error.splitlines()) == 1
    assert json.loads((out / "tuning.json").read_text())["winner"] == summary["winner"]


@pytest.mark.parametrize("jit, expected", [("off", False), ("auto", "auto")])
def test_the_jit_flag_reaches_every_trial(tmp_path, capsys, small_grid, monkeypatch, jit,
                                          expected):
    import tuning.regression

    seen = []

    class Recording(tuning.regression.RegressionHyperModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.jit_compile)

    monkeypatch.setattr(tuning.regression, "RegressionHyperModel", Recording)
    assert main(["regression", *tiny(trials=1), "--jit", jit, "--out", str(tmp_path)]) == 0
    assert seen == [expected] * 3  # The baseline's, the screen's and the grid's.


def test_more_folds_than_training_points(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["regression", "--tune", "--folds", "101", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert ("--folds 101: more folds than the 100 samples; each fold needs at least one "
            "sample, so pass --folds 100 or fewer") in error
    assert len(error.splitlines()) == 1
    assert not out.exists()  # Validated before the run folder is made.


@pytest.mark.parametrize("argv, fragments", [
    (["--trials", "3"], ["--trials applies to a search; add --tune"]),
    (["--fresh"], ["--fresh applies to a search"]),
    (["--tune", "--folds", "1"], ["--folds", "'1'", ">= 2"]),
    (["--tune", "--trials", "-1"], ["--trials", "'-1'", ">= 0"]),
    (["--tune", "--folds", "five"], ["--folds", "'five'"]),
    (["--tune", "--cv", "blocked"], ["--cv", "'blocked'", "interior", "contiguous"]),
    (["--cv", "contiguous"], ["--cv applies to a search"]),
])
def test_bad_tune_flags_are_one_line_errors(cli, argv, fragments):
    result = cli("regression", *argv)
    assert_user_error(result, *fragments)
    assert_single_line(result)


def test_help_lists_the_tune_flags(cli):
    result = cli("regression", "--help")
    for flag in ("--tune", "--trials", "--folds", "--homework-grid", "--fresh", "--cv"):
        assert flag in result.stdout


def test_grid_values_around_a_winner():
    from tuning.regression_space import HOMEWORK_GRID, grid_values

    center = {"learning_rate": 1e-3, "weight_decay": 3e-3, "batch_size": 50}
    grid = grid_values(center, homework=False)
    assert grid["learning_rate"] == pytest.approx([6.67e-4, 1e-3, 1.5e-3])
    assert grid["weight_decay"] == pytest.approx([2e-3, 3e-3, 4.5e-3])
    assert grid["batch_size"] == [50]  # The screen's choice; a second would double the grid.
    assert grid_values(center, homework=True) == HOMEWORK_GRID
    assert grid_values(center, homework=False, refine=False) == \
        {"learning_rate": [1e-3], "weight_decay": [3e-3], "batch_size": [50]}


def test_distance_from_the_own_configuration():
    from tuning.regression_space import ARCHITECTURE_DISTANCE, config_values, distance

    base = config_values(RegressionConfig())
    assert distance(base, base) == 0
    faster = {**base, "learning_rate": base["learning_rate"] * math.e}
    assert distance(faster, base) == pytest.approx(1.0)
    wider = {**base, "units_1": 32}
    assert distance(wider, base) == pytest.approx(ARCHITECTURE_DISTANCE)
    assert distance({**base, "weight_decay": 0.0}, base) > distance(faster, base)


@pytest.mark.parametrize("kwargs, needed", [
    ({}, True),  # The screen's winner sets the grid's centre: unknown in advance.
    ({"trials": 0}, False),  # The grid is centred on the own configuration.
    ({"trials": 0, "homework_grid": True}, False),  # The default recipe is in it.
    ({"homework_grid": True}, True),  # On the screen's architecture: not the own one.
])
def test_the_own_configuration_is_scored_once(kwargs, needed):
    from tuning.regression import needs_baseline_stage

    assert needs_baseline_stage(RegressionConfig(), TuneSettings(**kwargs)) is needed
    off_grid = RegressionConfig(learning_rate=1e-3)
    assert needs_baseline_stage(off_grid, TuneSettings(trials=0, homework_grid=True))
