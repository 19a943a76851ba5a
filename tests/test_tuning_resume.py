"""A search's folder: resumed, started over with --fresh, never mixed with something else."""

from __future__ import annotations

import json

import pytest

from hw1_keras.errors import InputError
from tuning.resume import IDENTITY_FILE, check_resumable, open_search_dir, reading_state

REGRESSION = {"search": {"trials": 2}, "config": {"seed": 0}}
MNIST = {"config": {"seed": 0}, "epochs_per_trial": 2, "trial_images": None, "studies": {}}


def saved_search(out, identity):
    tuning_dir = open_search_dir(out / "tuning", identity, fresh=False)
    (out / "metrics.json").write_text("{}")  # The winner's results beside it.
    return tuning_dir


@pytest.mark.parametrize("fresh", [False, True])
def test_an_empty_or_missing_folder_starts_a_search(tmp_path, fresh):
    assert not check_resumable(tmp_path / "new" / "tuning", REGRESSION, fresh)
    (tmp_path / "empty").mkdir()
    assert not check_resumable(tmp_path / "empty" / "tuning", REGRESSION, fresh)


def test_the_same_search_resumes_and_fresh_starts_it_over(tmp_path):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    assert check_resumable(tuning_dir, REGRESSION, fresh=False)
    assert not check_resumable(tuning_dir, REGRESSION, fresh=True)


def test_other_settings_are_refused_unless_fresh(tmp_path):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    other = {"search": {"trials": 3}, "config": {"seed": 0}}
    with pytest.raises(InputError, match=r"other settings \(search.trials 2 -> 3\).*--fresh"):
        check_resumable(tuning_dir, other, fresh=False)
    assert not check_resumable(tuning_dir, other, fresh=True)


@pytest.mark.parametrize("fresh", [False, True])
def test_a_folder_holding_no_search_is_refused_even_with_fresh(tmp_path, fresh):
    # A plain run's folder, or a user's own: --fresh deletes a search, not them.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty and holds no search"):
        check_resumable(tmp_path / "tuning", REGRESSION, fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "notes.txt"]


@pytest.mark.parametrize("fresh", [False, True])
def test_another_tasks_search_is_refused_even_with_fresh(tmp_path, fresh):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    with pytest.raises(InputError, match="holds a search of another task"):
        check_resumable(tuning_dir, MNIST, fresh)
    assert json.loads((tuning_dir / IDENTITY_FILE).read_text()) == REGRESSION


class Scored:
    """A KerasTuner grid whose trials train nothing: the score is the setting."""

    @staticmethod
    def tuner(tuning_dir):
        import keras_tuner

        class Grid(keras_tuner.GridSearch):
            def run_trial(self, trial, *args, **kwargs):
                return {"score": float(trial.hyperparameters.get("units"))}

        space = keras_tuner.HyperParameters()
        space.Choice("units", [4, 8])
        return Grid(lambda hp: None, objective=keras_tuner.Objective("score", "max"),
                    hyperparameters=space, max_trials=2, directory=str(tuning_dir),
                    project_name="stage", overwrite=False)


@pytest.mark.parametrize("damaged, cut", [
    ("trial_1/trial.json", 0),  # Emptied: killed as the write began.
    ("oracle.json", 40),  # Cut off mid-write.
])
def test_a_search_state_torn_by_a_kill_is_one_clear_error_and_stays_as_it_was(
        tmp_path, damaged, cut):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    Scored.tuner(tuning_dir).search(verbose=0)
    path = tuning_dir / "stage" / damaged
    path.write_text(path.read_text()[:cut])
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"search state in .*stage is damaged \(JSONDecodeError"
                                         r".*--fresh to start over, or pass another --out"):
        with reading_state(tuning_dir / "stage"):
            Scored.tuner(tuning_dir)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_an_intact_search_state_reloads_and_other_errors_pass_through(tmp_path):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    Scored.tuner(tuning_dir).search(verbose=0)
    with reading_state(tuning_dir / "stage"):
        tuner = Scored.tuner(tuning_dir)
    assert len(tuner.oracle.trials) == 2
    with pytest.raises(InputError, match="^--trials 0"):
        with reading_state(tuning_dir / "stage"):
            raise InputError("--trials 0: nothing to search")


@pytest.mark.parametrize("content", ["{broken", "5", ""])
def test_a_damaged_search_record_is_one_clear_error(tmp_path, content):
    tuning_dir = saved_search(tmp_path, REGRESSION)
    (tuning_dir / IDENTITY_FILE).write_text(content)
    with pytest.raises(InputError, match=r"search\.json is not a search's record"):
        check_resumable(tuning_dir, REGRESSION, fresh=False)
    assert (tuning_dir / IDENTITY_FILE).read_text() == content


def test_a_search_record_from_another_version_names_the_field_that_differs(tmp_path):
    tuning_dir = saved_search(tmp_path, {**REGRESSION, "added_later": 1})
    with pytest.raises(InputError, match=r"other settings \(added_later 1 -> unset\)"):
        check_resumable(tuning_dir, REGRESSION, fresh=False)
