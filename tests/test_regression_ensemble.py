"""`--ensemble K`: K seeded copies trained side by side, exported as their mean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw1_keras.errors import InputError
from hw1_keras.export import load_endpoint
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import MAX_ENSEMBLE, RegressionConfig
from hw1_keras.regression.train import members, run, train_model

TRAIN, TEST = regression_data.generate()
TINY = dict(epochs=40, log_every=20)


def test_copy_zero_is_the_single_run_and_the_output_is_the_mean():
    # Without XLA, which would only add two compiles: the seeding is the same.
    single, _, _ = train_model(RegressionConfig(**TINY), TRAIN, TEST, verbose=False,
                               jit_compile=False)
    ensemble, history, _ = train_model(RegressionConfig(**TINY, ensemble=3), TRAIN, TEST,
                                       verbose=False, jit_compile=False)
    nets = members(ensemble)
    assert len(nets) == 3
    # Copy 0: the single run's seed for its weights and its batches.
    for mine, theirs in zip(nets[0].weights, single.weights):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), atol=1e-5)
    # The other copies are seeded apart.
    assert not np.allclose(np.asarray(nets[1].weights[0]), np.asarray(nets[0].weights[0]))
    predictions = [np.asarray(net(TEST.x)) for net in nets]
    mean = np.asarray(ensemble.predict(TEST.x, verbose=0))
    np.testing.assert_allclose(mean, np.mean(predictions, axis=0), atol=1e-6)
    # Validation logs the averaged prediction; training the members' mean loss.
    assert history.history["val_mse"][-1] == pytest.approx(
        float(np.mean((mean - TEST.y) ** 2)), rel=1e-4)
    assert set(history.history) == {"loss", "mse", "val_loss", "val_mse"}


@pytest.mark.integration  # A whole command, in this process.
def test_an_ensemble_run_exports_one_model_answering_the_mean(tmp_path):
    import tensorflow as tf

    out = tmp_path / "run"
    metrics = run(RegressionConfig(**TINY, ensemble=2), str(out))
    assert metrics["parameters"] == 2 * 1185
    assert metrics["config"]["ensemble"] == 2
    serve = load_endpoint(out / "saved_model")
    exported = np.asarray(serve(tf.constant(TEST.x)))
    mse = float(np.mean((exported - TEST.y) ** 2))
    assert mse == pytest.approx(json.loads((out / "metrics.json").read_text())["test_mse"],
                                rel=1e-5)


@pytest.mark.parametrize("value", [0, MAX_ENSEMBLE + 1])
def test_ensemble_size_is_checked(value):
    with pytest.raises(InputError, match="--ensemble"):
        RegressionConfig(ensemble=value)
