"""`epoch_blocks` and `MultiStepTrainer`: the compiled multi-step SGD loop."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from hw1_keras.multistep import MultiStepTrainer, epoch_blocks
from hw1_keras.regression.data import generate
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import (
    RegressionHyperModel, build_model, epochs_per_call, hyperparameters,
)

N = 10


def toy_data(n=N):
    x = np.arange(n, dtype=np.float32).reshape(-1, 1)
    return x, 10 * x  # y pairs with x, so misalignment would show


def blocks_as_numpy(**kwargs):
    x, y = toy_data(kwargs.pop("n", N))
    return [tuple(t.numpy() for t in element) for element in epoch_blocks(x, y, **kwargs)]


def test_block_shapes_when_batch_divides_n():
    blocks = blocks_as_numpy(batch_size=5, epochs=4, epochs_per_call=2, seed=0)
    assert len(blocks) == 2
    for xs, ys, ws in blocks:
        assert xs.shape == (4, 5, 1) and ys.shape == (4, 5, 1) and ws.shape == (4, 5)
        assert np.all(ws == 1)


def test_padding_when_batch_does_not_divide_n():
    batch = 4
    steps = math.ceil(N / batch)  # 3 steps, 2 padded slots per epoch
    blocks = blocks_as_numpy(batch_size=batch, epochs=3, epochs_per_call=3, seed=1)
    (xs, ys, ws), = blocks
    assert xs.shape == (3 * steps, batch, 1) and ws.shape == (3 * steps, batch)
    np.testing.assert_array_equal(ys, 10 * xs)  # pairs stay together
    for epoch in range(3):
        ex = xs[epoch * steps:(epoch + 1) * steps].reshape(-1)
        ew = ws[epoch * steps:(epoch + 1) * steps].reshape(-1)
        # Every sample exactly once with weight 1, the padding weighted 0.
        assert sorted(ex[ew == 1].tolist()) == list(range(N))
        assert np.sum(ew == 0) == steps * batch - N
        assert set(np.unique(ew).tolist()) == {0.0, 1.0}
        # Only the last batch of an epoch is padded.
        assert np.all(ew[: N] == 1) and np.all(ew[N:] == 0)


def test_epochs_are_shuffled_differently():
    (xs, _, _), = blocks_as_numpy(batch_size=N, epochs=3, epochs_per_call=3, seed=0)
    orders = [xs[i, :, 0].tolist() for i in range(3)]
    assert orders[0] != orders[1] or orders[1] != orders[2]
    assert orders[0] != list(range(N)) or orders[1] != list(range(N))


def test_same_seed_same_blocks_other_seed_differs():
    a = blocks_as_numpy(batch_size=3, epochs=4, epochs_per_call=2, seed=5)
    b = blocks_as_numpy(batch_size=3, epochs=4, epochs_per_call=2, seed=5)
    c = blocks_as_numpy(batch_size=3, epochs=4, epochs_per_call=2, seed=6)
    for block_a, block_b in zip(a, b):
        for ta, tb in zip(block_a, block_b):
            np.testing.assert_array_equal(ta, tb)
    assert not all(np.array_equal(ba[0], bc[0]) for ba, bc in zip(a, c))


def test_order_does_not_depend_on_grouping():
    one_per_call = blocks_as_numpy(batch_size=4, epochs=5, epochs_per_call=1, seed=3)
    all_at_once = blocks_as_numpy(batch_size=4, epochs=5, epochs_per_call=5, seed=3)
    assert len(one_per_call) == 5 and len(all_at_once) == 1
    np.testing.assert_array_equal(np.concatenate([b[0] for b in one_per_call]), all_at_once[0][0])


def test_last_block_holds_the_remaining_epochs():
    steps = math.ceil(N / 4)
    blocks = blocks_as_numpy(batch_size=4, epochs=7, epochs_per_call=3, seed=0)
    assert [b[0].shape[0] for b in blocks] == [3 * steps, 3 * steps, 1 * steps]
    assert sum(b[0].shape[0] for b in blocks) == 7 * steps


def test_epochs_per_call():
    assert epochs_per_call(20, 10) == 10
    assert epochs_per_call(5, 500) == 5
    assert epochs_per_call(1, 1) == 1


def small_network(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(1,))
    hidden = keras.layers.Dense(8, activation="tanh",
                                kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    outputs = keras.layers.Dense(1)(hidden)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("batch_size, epochs, per_call", [(4, 5, 2), (10, 3, 3), (3, 4, 4)])
def test_trainer_runs_one_optimizer_step_per_mini_batch(batch_size, epochs, per_call):
    x, y = toy_data()
    network = small_network()
    trainer = MultiStepTrainer(network)
    trainer.compile(optimizer=keras.optimizers.SGD(1e-4), jit_compile=True)
    blocks = epoch_blocks(x, y / 100, batch_size=batch_size, epochs=epochs,
                          epochs_per_call=per_call, seed=0)
    history = trainer.fit(blocks, epochs=math.ceil(epochs / per_call), steps_per_epoch=1,
                          shuffle=False, verbose=0)
    assert int(trainer.optimizer.iterations.numpy()) == epochs * math.ceil(N / batch_size)
    assert set(history.history) == {"loss", "mse"}


def test_hypermodel_fit_counts_steps_and_respects_hyperparameters():
    x, y = toy_data()
    config = RegressionConfig(batch_size=4, epochs=5, log_every=2, units=(4,),
                              activations=("tanh",))
    hp = hyperparameters(config)
    hypermodel = RegressionHyperModel(epochs=5, log_every=2, seed=0, jit_compile=False)
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y / 100, validation_data=(x, y / 100))
    assert int(model.optimizer.iterations.numpy()) == 5 * math.ceil(N / 4)
    assert len(history.history["loss"]) == 3  # blocks of 2, 2 and 1 epochs
    assert {"loss", "mse", "val_loss", "val_mse"} <= set(history.history)


def test_short_training_on_embedded_data_lowers_the_loss():
    train, test = generate(2020)
    config = RegressionConfig(epochs=100, log_every=50, learning_rate=1e-2)
    hp = hyperparameters(config)
    # Without XLA: a training this short gains less from it than its compile costs.
    hypermodel = RegressionHyperModel(epochs=100, log_every=50, seed=0, jit_compile=False)
    model = hypermodel.build(hp)
    before = float(np.mean((model.predict(train.x, verbose=0) - train.y) ** 2))
    history = hypermodel.fit(hp, model, train.x, train.y, validation_data=(test.x, test.y))
    after = float(np.mean((model.predict(train.x, verbose=0) - train.y) ** 2))
    assert after < 0.6 * before, (before, after)
    assert history.history["mse"][-1] < history.history["mse"][0]
    assert np.all(np.isfinite(history.history["loss"]))
    # The objective includes the L2 penalty on top of the data loss.
    assert history.history["loss"][-1] > history.history["mse"][-1]


@pytest.mark.parametrize("optimizer_class, lr", [(keras.optimizers.Adam, 1e-2),
                                                 (keras.optimizers.SGD, 5e-2)])
def test_full_batch_steps_equal_manual_gradient_tape_steps(optimizer_class, lr):
    """batch_size == N: K compiled steps == K eager GradientTape steps (real SGD)."""
    steps = 6
    x, y = generate(2020)[0].x, generate(2020)[0].y
    network = small_network(seed=1)
    copy = small_network(seed=2)
    copy.set_weights(network.get_weights())
    initial = [w.copy() for w in network.get_weights()]

    trainer = MultiStepTrainer(network)
    trainer.compile(optimizer=optimizer_class(lr), jit_compile=True)
    blocks = epoch_blocks(x, y, batch_size=len(x), epochs=steps, epochs_per_call=3, seed=0)
    trainer.fit(blocks, epochs=2, steps_per_epoch=1, shuffle=False, verbose=0)
    assert int(trainer.optimizer.iterations.numpy()) == steps

    optimizer = optimizer_class(lr)
    xt, yt = tf.constant(x), tf.constant(y)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            prediction = copy(xt, training=True)
            loss = (tf.reduce_mean(keras.losses.mean_squared_error(yt, prediction))
                    + tf.add_n(copy.losses))
        variables = copy.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)

    for trained, manual, start in zip(network.get_weights(), copy.get_weights(), initial):
        assert not np.allclose(trained, start)  # training really moved every weight
        np.testing.assert_allclose(trained, manual, rtol=1e-4, atol=1e-6)


def test_padded_samples_do_not_affect_the_step():
    """Batch 4 on 6 points: the half-padded batch averages over its 2 real samples only."""
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]], np.float32)
    y = 2 * x
    network = small_network(seed=3)
    copy = small_network(seed=4)
    copy.set_weights(network.get_weights())
    trainer = MultiStepTrainer(network)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    blocks = epoch_blocks(x, y, batch_size=4, epochs=1, epochs_per_call=1, seed=0)
    (xs, ys, ws), = [tuple(t.numpy() for t in b) for b in blocks]
    trainer.fit(blocks, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)

    optimizer = keras.optimizers.SGD(0.1)
    for bx, by, bw in zip(xs, ys, ws):
        real = bw == 1
        with tf.GradientTape() as tape:
            prediction = copy(tf.constant(bx[real]), training=True)
            loss = (tf.reduce_mean(keras.losses.mean_squared_error(by[real], prediction))
                    + tf.add_n(copy.losses))
        optimizer.apply(tape.gradient(loss, copy.trainable_variables), copy.trainable_variables)
    for trained, manual in zip(network.get_weights(), copy.get_weights()):
        np.testing.assert_allclose(trained, manual, rtol=1e-4, atol=1e-6)


def test_build_model_default_trains_with_trainer():
    """The project's own model and optimizer plug into the trainer (slots pre-built)."""
    model = build_model()
    trainer = MultiStepTrainer(model)
    trainer.compile(optimizer=model.optimizer, jit_compile=True)
    assert trainer.optimizer is model.optimizer
    assert len(model.optimizer.variables) > 1  # Adam slots exist before tracing
    x, y = toy_data()
    trainer.fit(epoch_blocks(x, y, batch_size=5, epochs=2, epochs_per_call=2, seed=0),
                epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    result = trainer.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "mse"}
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert result["mse"] == pytest.approx(mse, rel=1e-4)
