"""The shared training callbacks: validating a moving average of the weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import build_model, hyperparameters
from hw1_keras.training import ValidateAveragedWeights


class Probe(keras.callbacks.Callback):
    """Records the weights when validation starts and when an epoch ends."""

    def __init__(self):
        super().__init__()
        self.at_validation, self.at_epoch_end = [], []

    def _weights(self):
        return [variable.numpy().copy() for variable in self.model.trainable_variables]

    def on_test_begin(self, logs=None):
        self.at_validation.append(self._weights())

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(self._weights())


def _fit(use_ema: bool):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(8, "relu")(inputs)))
    model.compile(keras.optimizers.Adam(0.05, use_ema=use_ema, ema_momentum=0.9), loss="mse")
    # Probes on both sides: `before` runs its hooks before the swap-in and
    # the swap-back, `after` after them.
    before, after = Probe(), Probe()
    averages = []

    class Averages(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            if use_ema:
                averages.append([v.numpy().copy()
                                 for v in model.optimizer._model_variables_moving_average])

    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[Averages(), before, ValidateAveragedWeights(), after])
    return model, history, before, after, averages


def test_validation_sees_the_average_and_training_goes_on_from_the_raw_weights():
    model, history, before, after, averages = _fit(use_ema=True)
    for epoch in range(2):
        raw, average = before.at_validation[epoch], averages[epoch]
        assert not all(np.allclose(r, a) for r, a in zip(raw, average)), "nothing to average"
        for seen, expected in zip(after.at_validation[epoch], average):
            np.testing.assert_array_equal(seen, expected)  # Validated: the average.
        for seen, expected in zip(before.at_epoch_end[epoch], average):
            np.testing.assert_array_equal(seen, expected)  # Checkpointed: the average.
        for seen, expected in zip(after.at_epoch_end[epoch], raw):
            np.testing.assert_array_equal(seen, expected)  # Backed up, trained on: raw.
    # The logged validation loss is the average's, not the raw weights'.
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    model.set_weights(averages[-1])
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(x, y, verbose=0), rel=1e-5)


def test_without_an_average_the_callback_changes_nothing():
    _, _, before, after, _ = _fit(use_ema=False)
    for stage in ("at_validation", "at_epoch_end"):
        for seen, expected in zip(sum(getattr(after, stage), []),
                                  sum(getattr(before, stage), [])):
            np.testing.assert_array_equal(seen, expected)


def test_mnist_ema_momentum_reaches_the_optimizer():
    model = build_model(hyperparameters(MnistConfig(ema_momentum=0.999)))
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == pytest.approx(0.999)
    assert not build_model(hyperparameters(MnistConfig())).optimizer.use_ema
    with pytest.raises(ValueError, match="--ema-momentum got 1.0"):
        MnistConfig(ema_momentum=1.0)
