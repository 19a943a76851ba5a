"""k folds trained side by side (`hw1_keras.stacked`, `RegressionHyperModel.fit_folds`)
against the same folds trained one by one with `fit`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.data import generate
from hw1_keras.regression.model import RegressionHyperModel, build_model, hyperparameters
from hw1_keras.stacked import StackedNetwork, stacked_epoch_blocks
from tuning.folds import kfold_indices

TRAIN, _ = generate(2020)


def fresh_models(hp, count):
    models = []
    for fold in range(count):
        keras.utils.set_random_seed(fold)
        models.append(build_model(hp))
    return models


def weights(model):
    return [np.asarray(w) for w in model.weights]


@pytest.mark.parametrize("folds, jit, batch, x, y", [
    # 5 folds of the embedded data, as the search runs them (80 training points
    # each), in XLA: integration, for the 5 single-fold trainings and the XLA
    # compile beside the stacked one.
    pytest.param(5, True, 50, TRAIN.x, TRAIN.y, marks=pytest.mark.integration),
    # 49 and 50 training points: one step per epoch at batch 64, the smaller fold
    # padded to the common batch.
    (2, False, 64, TRAIN.x[:99], TRAIN.y[:99]),
    # 4 and 5 training points at batch 4: 1 and 2 steps per epoch, which cannot
    # be stacked; fit_folds trains them one by one.
    (2, False, 4, TRAIN.x[:9], TRAIN.y[:9]),
])
def test_fit_folds_matches_training_each_fold_alone(folds, jit, batch, x, y):
    config = RegressionConfig(epochs=20, log_every=10, batch_size=batch, units=(8, 16),
                              learning_rate=1e-2, weight_decay=1e-2)
    hp = hyperparameters(config)
    hypermodel = RegressionHyperModel(epochs=config.epochs, log_every=config.log_every,
                                      seed=3, jit_compile=jit)
    splits = kfold_indices(len(x), folds, seed=0)

    together = fresh_models(hp, folds)
    histories = hypermodel.fit_folds(hp, together, x, y, splits)

    alone = fresh_models(hp, folds)
    initial = [weights(model)[0] for model in alone]
    # Without XLA, which would only add compile time: the loop is the same.
    hypermodel.jit_compile = False
    for fold, (model, (train, valid)) in enumerate(zip(alone, splits)):
        history = hypermodel.fit(hp, model, x[train], y[train],
                                 validation_data=(x[valid], y[valid])).history
        assert len(histories[fold]["val_mse"]) == 2  # One value per 10 epochs.
        np.testing.assert_allclose(histories[fold]["val_mse"], history["val_mse"],
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(histories[fold]["mse"], history["mse"], rtol=1e-4,
                                   atol=1e-6)
        for a, b in zip(weights(together[fold]), weights(model)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert not np.allclose(weights(model)[0], initial[fold])  # It trained.


def test_stacked_network_computes_each_copy_like_its_network():
    hp = hyperparameters(RegressionConfig(units=(4, 3), activations=("selu", "tanh")))
    models = fresh_models(hp, 3)
    network = StackedNetwork(models)
    assert len(network.trainable_variables) == 6  # Only the stacked ones, not the models'.
    x = np.linspace(-2, 2, 21, dtype=np.float32).reshape(1, -1, 1).repeat(3, axis=0)
    out = np.asarray(network(x))
    for copy, model in enumerate(models):
        np.testing.assert_allclose(out[copy], np.asarray(model(x[copy])), rtol=1e-5, atol=1e-6)
    # The L2 penalty of the stack is the sum of the copies' penalties.
    total = sum(float(sum(model.losses)) for model in models)
    assert float(sum(network.losses)) == pytest.approx(total, rel=1e-5)


def test_stacking_refuses_what_it_cannot_reproduce():
    dense = build_model(hyperparameters(RegressionConfig(units=(4,), activations=("relu",))))
    wider = build_model(hyperparameters(RegressionConfig(units=(5,), activations=("relu",))))
    with pytest.raises(ValueError, match="differ in architecture"):
        StackedNetwork([dense, wider])
    dropout = keras.Sequential([keras.Input((1,)), keras.layers.Dense(4),
                                keras.layers.Dropout(0.1), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="only chains of plain Dense layers"):
        StackedNetwork([dropout])
    sizes = [np.zeros((4, 1), np.float32), np.zeros((5, 1), np.float32)]
    with pytest.raises(ValueError, match="same number"):
        stacked_epoch_blocks(sizes, sizes, batch_size=4, epochs=1, epochs_per_call=1, seed=0)


@pytest.fixture
def bfloat16_policy():
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy("float32")


def test_under_a_mixed_policy_each_copy_computes_in_its_layers_dtypes(bfloat16_policy):
    # As in the network it stacks: hidden layers in bfloat16, the output layer
    # in float32 (an einsum of a bfloat16 and a float32 tensor would fail).
    hp = hyperparameters(RegressionConfig(units=(4, 3)))
    models = fresh_models(hp, 2)
    assert models[0].layers[-1].compute_dtype == "float32"
    network = StackedNetwork(models)
    x = np.linspace(-2, 2, 21, dtype=np.float32).reshape(1, -1, 1).repeat(2, axis=0)
    out = network(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    for copy, model in enumerate(models):
        np.testing.assert_allclose(np.asarray(out[copy]), np.asarray(model(x[copy])),
                                   rtol=2e-2, atol=2e-2)


def test_folds_train_side_by_side_under_a_mixed_policy(bfloat16_policy):
    config = RegressionConfig(epochs=4, log_every=2, batch_size=50)
    hp = hyperparameters(config)
    hypermodel = RegressionHyperModel(epochs=config.epochs, log_every=config.log_every,
                                      seed=0, jit_compile=False)
    histories = hypermodel.fit_folds(hp, fresh_models(hp, 2), TRAIN.x, TRAIN.y,
                                     kfold_indices(len(TRAIN.x), 2, seed=0))
    assert all(np.isfinite(history["val_mse"]).all() for history in histories)


def test_folds_trained_one_by_one_each_get_their_own_callbacks():
    # 4 and 5 training points at batch 4 cannot be stacked (1 and 2 steps per
    # epoch): each fold trains with fit, and a stateful callback must not
    # carry one fold's state into the next.
    class EpochCounter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    config = RegressionConfig(epochs=4, log_every=2, batch_size=4, units=(4, 4))
    hp = hyperparameters(config)
    hypermodel = RegressionHyperModel(epochs=config.epochs, log_every=config.log_every,
                                      seed=0, jit_compile=False)
    original = EpochCounter()
    hypermodel.fit_folds(hp, fresh_models(hp, 2), TRAIN.x[:9], TRAIN.y[:9],
                         kfold_indices(9, 2, seed=0), callbacks=[original])
    assert original.epochs == 0  # Copies trained; the caller's object is untouched.


@pytest.mark.parametrize("count, batch, copies", [(7, 3, 3), (100, 50, 5), (80, 30, 2)])
def test_sets_of_one_size_get_each_copys_own_batches_from_one_pipeline(count, batch, copies):
    from hw1_keras.multistep import epoch_blocks

    rng = np.random.default_rng(count)
    xs = [rng.normal(size=(count, 1)).astype(np.float32) for _ in range(copies)]
    ys = [rng.normal(size=(count, 1)).astype(np.float32) for _ in range(copies)]
    seeds = [3 + copy for copy in range(copies)]
    stacked = list(stacked_epoch_blocks(xs, ys, batch_size=batch, epochs=7, epochs_per_call=3,
                                        seed=seeds))
    alone = [list(epoch_blocks(xs[copy], ys[copy], batch_size=batch, epochs=7,
                               epochs_per_call=3, seed=seeds[copy])) for copy in range(copies)]
    assert len(stacked) == 3  # Calls of 3, 3 and 1 epochs.
    for index, block in enumerate(stacked):
        for part in range(3):  # x, y, sample weights
            for copy in range(copies):
                np.testing.assert_array_equal(block[part].numpy()[:, copy],
                                              alone[copy][index][part].numpy())
