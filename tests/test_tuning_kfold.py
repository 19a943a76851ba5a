"""The k-fold tuner (`tuning.kfold`) on a problem with known answers.

`ScoreByFold` trains nothing: fold i's `val_mse` history is `[s + 1, s, s + 2]`
with `s = mean(y of the fold's validation set) + offset`, so every objective
can be computed by hand from the split.
"""

from __future__ import annotations

import io
import math

import keras
import keras_tuner
import numpy as np
import pytest

from hw1_keras.errors import InputError
from tuning.folds import cv_folds, interior_folds, kfold_indices
from tuning.kfold import KFoldGridSearch, KFoldRandomSearch, grid_size

X = np.arange(10, dtype=np.float32).reshape(-1, 1)
Y = X**2  # Folds of unequal size (4, 3, 3) make the mean of fold means differ from the mean.
FOLDS = 3
SEED = 7
OFFSETS = [0.0, 1.0, 2.0]


class ScoreByFold(keras_tuner.HyperModel):
    """Records every fold it is asked to fit; `crash_at`/`nan_at` offsets misbehave."""

    def __init__(self, crash_at=None, nan_at=None):
        super().__init__()
        self.calls = []
        self.crash_at = crash_at
        self.nan_at = nan_at

    def build(self, hp):
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        offset = hp.get("offset")
        if offset == self.crash_at:
            raise KeyboardInterrupt  # Like a kill: not an Exception KerasTuner catches.
        x_val, y_val = validation_data
        self.calls.append((offset, tuple(x[:, 0]), tuple(x_val[:, 0])))
        score = math.nan if offset == self.nan_at else float(y_val.mean()) + offset
        return {"val_mse": [score + 1, score, score + 2]}


def grid_space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("offset", OFFSETS)
    return hp


def make_tuner(cls, tmp_path, hypermodel=None, *, direction="min", project="p", **kwargs):
    kwargs.setdefault("hyperparameters", grid_space())
    return cls(hypermodel or ScoreByFold(), objective=keras_tuner.Objective("val_mse", direction),
               folds=FOLDS, fold_seed=SEED, directory=str(tmp_path), project_name=project,
               stream=io.StringIO(), **kwargs)


def expected(offset, direction="min"):
    """The hand-computed objective: the mean over folds of each fold's best."""
    bests = []
    for _, valid in kfold_indices(len(X), FOLDS, SEED):
        score = float(Y[valid].mean()) + offset
        bests.append(score if direction == "min" else score + 2)
    return float(np.mean(bests)), bests


def completed(tuner):
    return [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]


# --- the split ---------------------------------------------------------------


def test_kfold_indices_partition_the_samples_the_same_way_every_time():
    folds = kfold_indices(10, 3, seed=1)
    assert [len(valid) for _, valid in folds] == [4, 3, 3]
    validated = np.concatenate([valid for _, valid in folds])
    assert sorted(validated.tolist()) == list(range(10))  # Each sample validated once.
    for train, valid in folds:
        assert set(train) | set(valid) == set(range(10)) and not set(train) & set(valid)
    again = kfold_indices(10, 3, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = kfold_indices(10, 3, seed=2)
    assert any(set(a[1]) != set(b[1]) for a, b in zip(folds, other))


def test_contiguous_folds_hold_out_stretches_of_x():
    x = np.random.default_rng(0).uniform(-5, 5, (50, 1))
    folds = kfold_indices(50, 5, seed=0, order_by=x)
    ranges = [(x[valid, 0].min(), x[valid, 0].max()) for _, valid in folds]
    # Stretches in order, none overlapping: every validation point's neighbours
    # on one side at least are held out with it.
    assert all(high < next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:]))
    for train, valid in folds:
        low, high = x[valid, 0].min(), x[valid, 0].max()
        assert not ((x[train, 0] >= low) & (x[train, 0] <= high)).any()
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(50))


def interior_cases():
    from hw1_keras.regression.data import generate
    from hw1_keras.regression.family import family

    yield "embedded", generate()[0].x
    yield "uniform", np.random.default_rng(0).uniform(-5, 5, (100, 1))
    for member in family()[::5]:
        yield member.name, member.train.x


@pytest.mark.parametrize("folds", [2, 5, 8])
def test_interior_folds_never_validate_the_ends_and_have_training_on_both_sides(folds):
    for name, x in interior_cases():
        split = interior_folds(x, folds)
        low, high = np.argmin(x[:, 0]), np.argmax(x[:, 0])
        validated = np.concatenate([valid for _, valid in split])
        assert low not in validated and high not in validated, name
        assert len(set(validated.tolist())) == len(validated)  # Each at most once.
        for train, valid in split:
            assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == len(x)
            lo, hi = x[valid, 0].min(), x[valid, 0].max()
            assert (x[train, 0] < lo).any() and (x[train, 0] > hi).any(), name
            # A stretch: no training point inside it.
            assert not ((x[train, 0] > lo) & (x[train, 0] < hi)).any(), name


def test_interior_folds_hold_out_whole_clusters():
    # Four clusters between two edge ones (the 5% always trained on): each fold
    # is one whole cluster, where equal counts would cut the third (20 + 16).
    centres = [-5.0, -3.0, -1.0, 1.5, 3.0, 5.0]
    sizes = [4, 18, 20, 16, 18, 4]
    x = np.concatenate([c + np.linspace(0, 0.2, n) for c, n in zip(centres, sizes)])
    split = interior_folds(x.reshape(-1, 1), 4)
    held = [sorted({round(float(v)) for v in x[valid]}) for _, valid in split]
    assert held == [[-3], [-1], [2], [3]]


def test_cv_folds_dispatch_and_refuse_the_impossible():
    x = np.arange(30, dtype=np.float32).reshape(-1, 1)
    assert [v.tolist() for _, v in cv_folds("contiguous", x, 3, 0)] == \
        [v.tolist() for _, v in kfold_indices(30, 3, 0, order_by=x)]
    assert [v.tolist() for _, v in cv_folds("random", x, 3, 4)] == \
        [v.tolist() for _, v in kfold_indices(30, 3, 4)]
    with pytest.raises(InputError, match="at most 8 folds"):
        interior_folds(np.arange(10.0), 9)
    with pytest.raises(InputError, match="expected interior"):
        cv_folds("blocked", x, 3, 0)


@pytest.mark.parametrize("folds, count, fragment", [
    (1, 10, ">= 2"), (0, 10, ">= 2"), (11, 10, "more folds than the 10 samples"),
])
def test_kfold_indices_reject_impossible_splits(folds, count, fragment):
    with pytest.raises(InputError, match=fragment):
        kfold_indices(count, folds, seed=0)


# --- scoring -----------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_search(tmp_path_factory):
    """One finished k-fold grid search (min direction, max_trials above the grid's 3)."""
    hypermodel = ScoreByFold()
    tuner = make_tuner(KFoldGridSearch, tmp_path_factory.mktemp("grid"), hypermodel,
                       max_trials=10)
    tuner.search(X, Y)
    return tuner, hypermodel


def check_scores(tuner, direction):
    trials = completed(tuner)
    assert sorted(t.hyperparameters.get("offset") for t in trials) == OFFSETS
    for trial in trials:
        mean, bests = expected(trial.hyperparameters.get("offset"), direction)
        assert trial.score == pytest.approx(mean)
        metrics = trial.metrics
        for fold, best in enumerate(bests):
            assert metrics.get_last_value(f"val_mse_fold_{fold}") == pytest.approx(best)
        assert metrics.get_last_value("val_mse_std") == pytest.approx(np.std(bests))
        assert metrics.get_last_value("seconds") >= 0


def test_grid_search_scores_each_trial_by_the_mean_of_fold_bests(grid_search):
    tuner, _ = grid_search
    check_scores(tuner, "min")
    assert tuner.get_best_hyperparameters()[0].get("offset") == OFFSETS[0]


def test_a_max_objective_takes_each_folds_highest_value(tmp_path):
    tuner = make_tuner(KFoldGridSearch, tmp_path, direction="max")
    tuner.search(X, Y)
    check_scores(tuner, "max")
    assert tuner.get_best_hyperparameters()[0].get("offset") == OFFSETS[-1]


def test_random_search_runs_max_trials_on_identical_folds(tmp_path):
    space = keras_tuner.HyperParameters()
    space.Float("offset", 0.0, 1.0)
    hypermodel = ScoreByFold()
    tuner = make_tuner(KFoldRandomSearch, tmp_path, hypermodel, hyperparameters=space,
                       max_trials=4, seed=3)
    tuner.search(X, Y)
    trials = completed(tuner)
    assert len(trials) == 4 and len(hypermodel.calls) == 4 * FOLDS
    for trial in trials:
        assert trial.score == pytest.approx(expected(trial.hyperparameters.get("offset"))[0])
    # Every trial saw the same k (train, validation) splits, in the same order.
    splits = [tuple(call[1:] for call in hypermodel.calls[i:i + FOLDS])
              for i in range(0, len(hypermodel.calls), FOLDS)]
    assert len(set(splits)) == 1
    assert [set(valid) for _, valid in splits[0]] == [
        set(X[valid, 0]) for _, valid in kfold_indices(len(X), FOLDS, SEED)]


def test_grid_exhaustion_ends_the_search_before_max_trials(grid_search):
    tuner, hypermodel = grid_search
    assert len(tuner.oracle.trials) == len(OFFSETS) == grid_size(grid_space()) < 10
    assert len(hypermodel.calls) == len(OFFSETS) * FOLDS


def test_one_line_per_finished_trial(grid_search):
    tuner, _ = grid_search
    lines = tuner.stream.getvalue().splitlines()
    assert len(lines) == len(OFFSETS)
    first = expected(0.0)[0]
    cap = tuner.oracle.max_trials  # Counted from 1, as people count trials.
    assert lines[0].startswith(f"trial 1/{cap} ") and "offset=0" in lines[0]
    assert lines[-1].startswith(f"trial {len(OFFSETS)}/{cap} ")
    assert f"val_mse {first:.4g} ±" in lines[0] and "(folds " in lines[0]
    assert f"best {first:.4g}" in lines[-1]  # Offset 0 stays the best.


def test_fit_folds_is_used_when_the_hypermodel_offers_it(tmp_path):
    class AllFoldsAtOnce(ScoreByFold):
        def fit_folds(self, hp, models, x, y, folds, **kwargs):
            assert len(models) == FOLDS and all(isinstance(m, keras.Model) for m in models)
            return [self.fit(hp, model, x[train], y[train], validation_data=(x[valid], y[valid]))
                    for model, (train, valid) in zip(models, folds)]

        def fit(self, hp, model, x, y, validation_data=None, **kwargs):
            self.via_fit_folds = True
            return super().fit(hp, model, x, y, validation_data, **kwargs)

    hypermodel = AllFoldsAtOnce()
    tuner = make_tuner(KFoldGridSearch, tmp_path, hypermodel)
    tuner.search(X, Y)
    assert hypermodel.via_fit_folds
    assert [t.score for t in completed(tuner)] == pytest.approx(
        [expected(o)[0] for o in OFFSETS])


def test_every_trial_builds_its_models_under_the_precision_asked_for(tmp_path):
    # Keras' clear_session, which frees each trial's models, resets the dtype
    # policy; a search under --precision must still train every trial in it.
    class RecordsPolicy(ScoreByFold):
        def build(self, hp):
            model = super().build(hp)
            self.policies.append(model.layers[-1].dtype_policy.name)
            return model

    hypermodel = RecordsPolicy()
    hypermodel.policies = []
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        make_tuner(KFoldGridSearch, tmp_path, hypermodel).search(X, Y)
    finally:
        keras.config.set_dtype_policy("float32")
    assert len(hypermodel.policies) >= len(OFFSETS) * FOLDS
    assert set(hypermodel.policies) == {"mixed_bfloat16"}


# --- failures, resume, errors -----------------------------------------------


def test_a_diverged_fold_fails_the_trial_and_the_search_goes_on(tmp_path):
    tuner = make_tuner(KFoldGridSearch, tmp_path, ScoreByFold(nan_at=1.0))
    tuner.search(X, Y)
    status = {t.hyperparameters.get("offset"): t.status for t in tuner.oracle.trials.values()}
    assert status == {0.0: "COMPLETED", 1.0: "FAILED", 2.0: "COMPLETED"}
    assert "failed: " in tuner.stream.getvalue().splitlines()[1]


def test_resume_after_a_crash_does_not_redo_finished_trials(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        make_tuner(KFoldGridSearch, tmp_path, ScoreByFold(crash_at=2.0)).search(X, Y)
    again = ScoreByFold()
    tuner = make_tuner(KFoldGridSearch, tmp_path, again)  # Same folder: overwrite=False.
    tuner.search(X, Y)
    assert {call[0] for call in again.calls} == {2.0}  # Only the interrupted trial ran.
    assert len(again.calls) == FOLDS
    assert sorted(t.hyperparameters.get("offset") for t in completed(tuner)) == OFFSETS
    assert tuner.oracle.get_best_trials(1)[0].score == pytest.approx(expected(0.0)[0])


def test_too_few_folds_is_refused(tmp_path):
    with pytest.raises(InputError, match=">= 2"):
        KFoldGridSearch(ScoreByFold(), objective="val_mse", folds=1,
                        directory=str(tmp_path), project_name="p")


@pytest.mark.parametrize("search_kwargs, fragment", [
    ({"validation_data": (X, Y)}, "validates on each fold"),
])
def test_validation_data_is_refused(tmp_path, search_kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        make_tuner(KFoldGridSearch, tmp_path).search(X, Y, **search_kwargs)


def test_more_folds_than_samples_is_refused_before_any_trial(tmp_path):
    hypermodel = ScoreByFold()
    with pytest.raises(InputError, match="more folds than the 2 samples"):
        make_tuner(KFoldGridSearch, tmp_path, hypermodel).search(X[:2], Y[:2])
    assert hypermodel.calls == []


def test_a_search_of_no_trials_is_refused(tmp_path):
    # KerasTuner itself reads max_trials=0 as "no limit".
    with pytest.raises(InputError, match="max_trials=0"):
        make_tuner(KFoldRandomSearch, tmp_path, max_trials=0).search(X, Y)


def test_an_empty_grid_is_refused():
    from tuning.regression_space import grid_space as regression_grid

    center = {"depth": 1, "units_1": 4, "activation_1": "relu"}
    with pytest.raises(InputError, match="no values for weight_decay"):
        regression_grid(center, {"learning_rate": [1e-3], "weight_decay": []}, epochs=2)
    with pytest.raises(ValueError):  # KerasTuner's own check, for a hand-made space.
        keras_tuner.HyperParameters().Choice("offset", [])


def test_an_objective_is_required(tmp_path):
    with pytest.raises(InputError, match="one named objective"):
        KFoldGridSearch(ScoreByFold(), folds=2, directory=str(tmp_path), project_name="p",
                        hyperparameters=grid_space())


def test_an_objective_the_fit_does_not_log_is_a_clear_error(tmp_path):
    tuner = make_tuner(KFoldGridSearch, tmp_path)
    tuner.oracle.objective = keras_tuner.Objective("val_accuracy", "max")
    with pytest.raises(ValueError, match="no 'val_accuracy'"):
        tuner.search(X, Y)


def test_oversized_models_fail_without_training(tmp_path):
    hypermodel = ScoreByFold()
    tuner = make_tuner(KFoldGridSearch, tmp_path, hypermodel, max_model_size=1,
                       max_consecutive_failed_trials=len(OFFSETS) + 1)
    tuner.search(X, Y)  # Dense(1) on one input: 2 parameters.
    assert {t.status for t in tuner.oracle.trials.values()} == {"FAILED"}
    assert hypermodel.calls == []
    assert "Oversized model: 2 parameters" in tuner.stream.getvalue()


def test_resume_after_a_stop_between_trials_visits_the_rest_of_the_grid(tmp_path):
    class StopsAfterTwo(KFoldGridSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)  # The trial is saved as finished...
            if len(self.oracle.end_order) == 2:
                raise KeyboardInterrupt  # ... and the process dies before the next.

    with pytest.raises(KeyboardInterrupt):
        make_tuner(StopsAfterTwo, tmp_path).search(X, Y)
    again = ScoreByFold()
    tuner = make_tuner(KFoldGridSearch, tmp_path, again)
    tuner.search(X, Y)
    assert {call[0] for call in again.calls} == {OFFSETS[2]}
    assert sorted(t.hyperparameters.get("offset") for t in completed(tuner)) == OFFSETS
