"""The regression MLP: architecture, hyperparameters and the L2 penalty."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import RegressionHyperModel, build_model, hyperparameters


@pytest.fixture(scope="module")
def default_model():
    keras.utils.set_random_seed(0)
    return build_model()


def dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_default_model_has_1185_parameters(default_model):
    # (1*16 + 16) + (16*64 + 64) + (64*1 + 1)
    assert default_model.count_params() == 1185


def test_default_layer_shapes(default_model):
    layers = dense_layers(default_model)
    assert [tuple(layer.kernel.shape) for layer in layers] == [(1, 16), (16, 64), (64, 1)]
    assert [tuple(layer.bias.shape) for layer in layers] == [(16,), (64,), (1,)]
    assert tuple(default_model.input_shape) == (None, 1)
    assert tuple(default_model.output_shape) == (None, 1)
    x = np.linspace(-5, 5, 7, dtype=np.float32).reshape(-1, 1)
    assert default_model.predict(x, verbose=0).shape == (7, 1)


def test_first_layer_selu_lecun_normal_then_sigmoid(default_model):
    first, second, output = dense_layers(default_model)
    assert first.activation is keras.activations.selu
    assert isinstance(first.kernel_initializer, keras.initializers.LecunNormal)
    assert second.activation is keras.activations.sigmoid
    assert isinstance(second.kernel_initializer, keras.initializers.GlorotUniform)
    assert output.activation is keras.activations.linear


def test_default_model_is_compiled_with_adam_and_default_lr(default_model):
    optimizer = default_model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(4e-4)


def test_hyperparameters_pin_config_values():
    config = RegressionConfig(units=(8, 8, 8), activations=("tanh", "relu", "selu"),
                              learning_rate=3e-3, weight_decay=0.02, batch_size=16)
    hp = hyperparameters(config)
    assert hp.values["depth"] == 3
    assert hp.values["batch_size"] == 16
    assert hp.values["learning_rate"] == 3e-3
    model = build_model(hp)
    hidden = dense_layers(model)[:-1]
    assert len(hidden) == 3
    assert [layer.units for layer in hidden] == [8, 8, 8]
    assert [layer.activation for layer in hidden] == [
        keras.activations.tanh, keras.activations.relu, keras.activations.selu]
    assert isinstance(hidden[2].kernel_initializer, keras.initializers.LecunNormal)
    assert isinstance(hidden[0].kernel_initializer, keras.initializers.GlorotUniform)
    assert model.count_params() == (8 + 8) + 2 * (64 + 8) + (8 + 1)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(3e-3)
    assert dense_layers(model)[0].kernel_regularizer.l2 == pytest.approx(0.01)


def test_hyperparameters_single_layer():
    config = RegressionConfig(units=(5,), activations=("gelu",))
    model = build_model(hyperparameters(config))
    assert [tuple(layer.kernel.shape) for layer in dense_layers(model)] == [(1, 5), (5, 1)]


def test_unpinned_hyperparameters_take_config_defaults():
    hp = keras_tuner.HyperParameters()
    model = build_model(hp)
    assert hp.values["depth"] == 2
    assert hp.values["units_1"] == 16 and hp.values["units_2"] == 64
    assert hp.values["activation_1"] == "selu" and hp.values["activation_2"] == "sigmoid"
    assert model.count_params() == 1185
    # fit() reads the batch size and the epochs, with the config's and the object's defaults.
    assert RegressionHyperModel(epochs=7, log_every=1).schedule(hp) == (7, 50)
    assert hp.values["batch_size"] == 50 and hp.values["epochs"] == 7


def test_hypermodel_build_uses_hp():
    hp = hyperparameters(RegressionConfig(units=(3, 4), activations=("relu", "relu")))
    model = RegressionHyperModel(epochs=1, log_every=1).build(hp)
    assert [layer.units for layer in dense_layers(model)] == [3, 4, 1]


def test_kernel_l2_penalty_is_half_weight_decay_times_sum_of_squares():
    weight_decay = 0.01
    keras.utils.set_random_seed(1)
    model = build_model(hyperparameters(RegressionConfig(weight_decay=weight_decay)))
    kernels = [layer.kernel.numpy() for layer in dense_layers(model)]
    # Make the biases non-zero so a penalty on them would show.
    for layer in dense_layers(model):
        layer.bias.assign(np.full(layer.bias.shape, 3.0, np.float32))
    model(np.zeros((1, 1), np.float32))
    expected = weight_decay / 2 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels)
    assert len(model.losses) == 3  # one penalty per kernel, none for the biases
    total = float(sum(float(loss) for loss in model.losses))
    assert total == pytest.approx(expected, rel=1e-5)


def test_penalty_gradient_is_pytorch_weight_decay():
    """d/dw [wd/2 * sum(w^2)] = wd * w: PyTorch's weight decay."""
    import tensorflow as tf

    weight_decay = 0.04
    model = build_model(hyperparameters(RegressionConfig(weight_decay=weight_decay)))
    kernel = dense_layers(model)[0].kernel
    with tf.GradientTape() as tape:
        model(np.zeros((1, 1), np.float32))
        penalty = tf.add_n(model.losses)
    gradient = tape.gradient(penalty, kernel)
    np.testing.assert_allclose(gradient.numpy(), weight_decay * kernel.numpy(), rtol=1e-5)


def test_zero_weight_decay_means_no_penalty():
    model = build_model(hyperparameters(RegressionConfig(weight_decay=0.0)))
    model(np.zeros((1, 1), np.float32))
    assert model.losses == []
    assert all(layer.kernel_regularizer is None for layer in dense_layers(model))
