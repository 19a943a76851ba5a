"""The shared training callbacks: the kill-safe best checkpoint and backup, a moving average."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import build_model, hyperparameters
from hw1_keras.errors import InputError
from hw1_keras.backup import BestCheckpoint, ResumingBackup, WorkerBackupAndRestore
from hw1_keras.training import ValidateAveragedWeights


class Probe(keras.callbacks.Callback):
    """Records every variable when validation starts and when an epoch ends."""

    def __init__(self):
        super().__init__()
        self.at_validation, self.at_epoch_end = [], []

    def _variables(self):
        return {variable.path: variable.numpy().copy() for variable in self.model.variables}

    def on_test_begin(self, logs=None):
        self.at_validation.append(self._variables())

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(self._variables())


def _data():
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]


def _fit(use_ema: bool):
    keras.utils.set_random_seed(0)
    x, y = _data()
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    normalized = keras.layers.BatchNormalization(name="batch_norm")(hidden)
    outputs = keras.layers.Dense(1)(keras.layers.ReLU()(normalized))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.05, use_ema=use_ema, ema_momentum=0.9), loss="mse")
    # Probes on both sides: `before` runs its hooks before the swap-in and
    # the swap-back, `after` after them.
    before, after = Probe(), Probe()
    averages = []

    class Averages(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            if use_ema:
                averages.append({variable.path: average.numpy().copy() for variable, average in zip(
                    model.trainable_variables, model.optimizer._model_variables_moving_average)})

    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[Averages(), before, ValidateAveragedWeights([x[:64]]), after])
    return model, history, before, after, averages


def _assert_equal(seen: dict, expected: dict):
    for path, value in expected.items():
        np.testing.assert_array_equal(seen[path], value, err_msg=path)


def test_validation_sees_the_average_and_training_goes_on_from_the_raw_weights():
    model, history, before, after, averages = _fit(use_ema=True)
    x, y = _data()
    for epoch in range(2):
        raw, average = before.at_validation[epoch], averages[epoch]
        assert not all(np.allclose(raw[path], a) for path, a in average.items())
        _assert_equal(after.at_validation[epoch], average)  # Validated: the average,
        _assert_equal(before.at_epoch_end[epoch], average)  # checkpointed: the average,
        _assert_equal(after.at_epoch_end[epoch], raw)  # backed up and trained on: all raw.
        # BatchNorm's statistics re-estimated on the settle batch for the average.
        hidden = x[:64] @ average["hidden/kernel"] + average["hidden/bias"]
        np.testing.assert_allclose(after.at_validation[epoch]["batch_norm/moving_mean"],
                                   hidden.mean(axis=0), rtol=1e-5, atol=1e-6)
        assert not np.allclose(after.at_validation[epoch]["batch_norm/moving_mean"],
                               raw["batch_norm/moving_mean"])
    # The logged validation loss is that of the state checkpointed.
    for variable in model.variables:
        variable.assign(before.at_epoch_end[-1][variable.path])
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(x, y, verbose=0), rel=1e-5)


def test_without_an_average_the_callback_changes_nothing():
    _, _, before, after, _ = _fit(use_ema=False)
    for stage in ("at_validation", "at_epoch_end"):
        for seen, expected in zip(getattr(after, stage), getattr(before, stage)):
            _assert_equal(seen, expected)


def test_mnist_ema_momentum_reaches_the_optimizer():
    model = build_model(hyperparameters(MnistConfig(ema_momentum=0.999)))
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == pytest.approx(0.999)
    assert not build_model(hyperparameters(MnistConfig())).optimizer.use_ema
    with pytest.raises(ValueError, match="--ema-momentum got 1.0"):
        MnistConfig(ema_momentum=1.0)


def test_an_mnist_run_averages_only_when_asked_between_checkpoint_and_backup(tmp_path):
    from hw1_keras.mnist.train import _callbacks

    kinds = [type(c) for c in _callbacks(tmp_path, {}, [np.zeros((30, 28, 28, 1), "float32")])]
    assert kinds.index(BestCheckpoint) < kinds.index(
        ValidateAveragedWeights) < kinds.index(ResumingBackup)
    assert ValidateAveragedWeights not in [type(c) for c in _callbacks(tmp_path, {}, None)]


def test_an_mnist_average_settles_batch_norm_on_batches_like_the_training_ones():
    from hw1_keras.mnist.train import SETTLE_IMAGES, settle_batches

    images = np.zeros((SETTLE_IMAGES + 100, 28, 28), "uint8")
    images[:, 4:24, 12:16] = 255  # A bar, which every augmentation moves.
    seen = np.concatenate(settle_batches(MnistConfig(), images))[..., 0]
    assert len(seen) == SETTLE_IMAGES
    np.testing.assert_array_equal(seen[0::2], images[0:SETTLE_IMAGES:2])
    assert np.mean([not np.array_equal(a, images[0]) for a in seen[1::2]]) > 0.95
    # A run without augmentation trains, and so settles, on originals alone.
    plain = settle_batches(MnistConfig(augmented_copy=0), images)
    np.testing.assert_array_equal(np.concatenate(plain)[..., 0], images[:SETTLE_IMAGES])


def _checkpointed_model(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.layers[0].kernel.assign(np.full((2, 1), value, "float32"))
    return model


def _kernel(path) -> float:
    model = _checkpointed_model(0.0)
    model.load_weights(path)
    return float(model.layers[0].kernel.numpy()[0, 0])


def _epochs(callback, model, values, first_epoch=0):
    callback.set_model(model)
    for epoch, value in enumerate(values, first_epoch):
        model.layers[0].kernel.assign(np.full((2, 1), epoch, "float32"))  # Marks the epoch.
        callback.on_epoch_end(epoch, {"val_accuracy": value})


def test_best_checkpoint_keeps_the_best_epoch_and_says_which(tmp_path):
    path = tmp_path / "best.weights.h5"
    _epochs(BestCheckpoint(path), _checkpointed_model(0.0), [0.90, 0.95, 0.93])
    assert _kernel(path) == 1.0  # The weights of epoch index 1...
    assert json.loads((tmp_path / "best.weights.json").read_text()) == {
        "epoch": 2, "val_accuracy": 0.95}  # ...which is the 2nd epoch.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.weights.h5", "best.weights.json"]


def test_a_resumed_run_competes_with_the_checkpoint_on_disk_a_new_one_does_not(tmp_path):
    path = tmp_path / "best.weights.h5"
    _epochs(BestCheckpoint(path), _checkpointed_model(0.0), [0.95])
    # Resumed at epoch 1: a lower value must not replace the saved best.
    resumed = BestCheckpoint(path, resume=True)
    assert resumed.best == 0.95
    _epochs(resumed, _checkpointed_model(0.0), [0.94], first_epoch=1)
    assert _kernel(path) == 0.0
    # A new run in the same folder replaces it at its first epoch.
    _epochs(BestCheckpoint(path), _checkpointed_model(0.0), [0.50], first_epoch=7)
    assert _kernel(path) == 7.0
    assert json.loads((tmp_path / "best.weights.json").read_text())["epoch"] == 8


def test_a_kill_after_the_weights_land_cannot_leave_their_note_behind(tmp_path):
    path = tmp_path / "best.weights.h5"
    _epochs(BestCheckpoint(path), _checkpointed_model(0.0), [0.90, 0.95])
    # What a kill between the weights' rename and the note's write leaves:
    # the epoch-2 weights with the epoch-1 note beside them.
    (tmp_path / "best.weights.json").write_text('{"epoch": 1, "val_accuracy": 0.90}')
    resumed = BestCheckpoint(path, resume=True)
    assert resumed.saved() == {"epoch": 2, "val_accuracy": 0.95}
    _epochs(resumed, _checkpointed_model(0.0), [0.93], first_epoch=2)
    assert _kernel(path) == 1.0  # 0.93 beats the stale note, not the weights on disk.


def test_a_save_that_dies_half_way_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "best.weights.h5"
    model = _checkpointed_model(0.0)
    callback = BestCheckpoint(path)
    _epochs(callback, model, [0.90])

    def torn_save(filepath, overwrite=True):  # What a kill -9 mid-write leaves.
        with open(filepath, "wb") as handle:
            handle.write(b"\x89HDF torn")
        raise KeyboardInterrupt

    model.save_weights = torn_save
    with pytest.raises(KeyboardInterrupt):
        _epochs(callback, model, [0.99], first_epoch=1)
    assert _kernel(path) == 0.0
    assert json.loads((tmp_path / "best.weights.json").read_text())["epoch"] == 1


def _backed_up(backup_dir, epochs: int) -> list[list[np.ndarray]]:
    """Trains a tiny model `epochs` epochs with a kept double backup; each epoch's weights."""
    keras.utils.set_random_seed(0)
    x, y = _data()
    model, weights = _backup_model(), []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda *_: weights.append(model.get_weights()))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[
        ResumingBackup(str(backup_dir), double_checkpoint=True, delete_checkpoint=False), record])
    return weights


def _backup_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), loss="mse")
    return model


def _resume(callback) -> keras.Model:
    """A fresh model after `callback`'s start of training (what `fit` does first)."""
    model = _backup_model()
    callback.set_model(model)
    callback.on_train_begin()
    return model


@pytest.mark.parametrize("torn", [b"", b'{"epoch'], ids=["empty", "cut-off"])
def test_a_backup_whose_metadata_a_kill_tore_resumes_from_the_previous_one(tmp_path, torn):
    backup = tmp_path / "backup"
    epochs = _backed_up(backup, epochs=2)
    metadata = backup / "training_metadata.json"
    metadata.write_bytes(torn)  # A kill -9 while epoch 2's metadata was written.
    model = _resume(ResumingBackup(str(backup), double_checkpoint=True))
    assert model._initial_epoch == 1  # Epoch 2 trains again...
    for seen, expected in zip(model.get_weights(), epochs[0], strict=True):
        np.testing.assert_array_equal(seen, expected)  # ...from epoch 1's weights.
    assert json.loads(metadata.read_text())["epoch"] == 1  # The backup is whole again.
    # A multi-worker run's other workers read the chief's backup the same way.
    metadata.write_bytes(torn)
    worker = WorkerBackupAndRestore(str(backup), str(tmp_path / "scratch"))
    assert _resume(worker)._initial_epoch == 1


def test_a_torn_backup_with_no_whole_earlier_copy_is_refused_in_one_line(tmp_path):
    backup = tmp_path / "backup"
    _backed_up(backup, epochs=1)  # One save: no earlier copy yet.
    (backup / "training_metadata.json").write_bytes(b'{"epoch": ')
    with pytest.raises(InputError, match=f"the backup in {backup} is damaged") as error:
        _resume(ResumingBackup(str(backup), double_checkpoint=True))
    assert "\n" not in str(error.value) and "--out" in str(error.value)
