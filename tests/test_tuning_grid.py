"""`tuning.grid.ResumableGrid`: a reloaded grid search visits the rest of its grid."""

from __future__ import annotations

import keras_tuner
import pytest

from tuning.grid import ResumableGrid


class ScoreGrid(ResumableGrid, keras_tuner.GridSearch):
    """Trains nothing: a trial's score is a function of its values; runs are recorded."""

    def __init__(self, *args, ran: list, **kwargs):
        self.ran = ran
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        self.ran.append((values["a"], values["b"]))
        return {"score": values["a"] * 10 + values["b"]}


def space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [1, 2, 3])
    hp.Choice("b", [0, 5])
    return hp


def make(tmp_path, ran, max_trials):
    return ScoreGrid(objective=keras_tuner.Objective("score", "max"), hyperparameters=space(),
                     max_trials=max_trials, ran=ran, directory=str(tmp_path),
                     project_name="grid", overwrite=False)


@pytest.mark.parametrize("first", [1, 2, 5])
def test_a_reloaded_grid_visits_each_remaining_combination_once(tmp_path, first):
    ran = []
    make(tmp_path, ran, first).search(verbose=0)
    assert len(ran) == first
    make(tmp_path, ran, None).search(verbose=0)  # Reloaded, without the cap.
    assert sorted(ran) == sorted((a, b) for a in (1, 2, 3) for b in (0, 5))
    again = []
    make(tmp_path, again, None).search(verbose=0)  # Exhausted: nothing more to run.
    assert again == []
