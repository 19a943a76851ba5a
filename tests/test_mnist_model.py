"""The CNN's size and every option the tuning studies vary."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from hw1_keras.mnist import plots
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.mnist.model import build_model, hyperparameters


def _model(**changes):
    return build_model(hyperparameters(dataclasses.replace(MnistConfig(), **changes)))


def test_default_model_has_about_3m_parameters_and_the_homework_layers():
    model = build_model()
    assert model.count_params() == 3_241_642
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convs] == [32, 64]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 2
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 2
    assert model.get_layer("dense").units == 1024


@pytest.mark.parametrize(
    "changes, flatten_size",
    [
        ({"filters": (16,)}, 14 * 14 * 16),
        ({"filters": (32, 64, 128)}, 3 * 3 * 128),
        ({"downsampling": "stride"}, 7 * 7 * 64),
        ({"batch_norm": 0}, 7 * 7 * 64),
    ],
)
def test_options_change_the_architecture(changes, flatten_size):
    model = _model(**changes)
    assert model.get_layer("flatten").output.shape[-1] == flatten_size
    layer_types = {type(layer) for layer in model.layers}
    assert (keras.layers.MaxPooling2D in layer_types) == (changes.get("downsampling") != "stride")
    assert (keras.layers.BatchNormalization in layer_types) == (changes.get("batch_norm", 1) == 1)


def test_dense_units_and_dropout_rates_are_applied():
    model = _model(dense_units=128, dropout=0.1, dense_dropout=0.3)
    assert model.get_layer("dense").units == 128
    assert model.get_layer("conv_dropout").rate == pytest.approx(0.1)
    assert model.get_layer("dense_dropout").rate == pytest.approx(0.3)


def test_dense_batch_norm_normalizes_the_dense_layer_before_its_relu():
    model = _model(dense_batch_norm=1)
    dense = model.get_layer("dense")
    assert dense.use_bias is False and dense.activation is keras.activations.linear
    order = [layer.name for layer in model.layers]
    assert order.index("dense") < order.index("dense_batch_norm") < order.index("dense_relu")
    # The dense bias (1024) gives way to BN's scale, shift and two moving statistics.
    assert model.count_params() == 3_241_642 - 1024 + 4 * 1024


def test_the_model_normalizes_raw_pixels_itself():
    model = build_model()
    normalize = model.get_layer("normalize")
    pixels = np.array([[0.0, 255.0]], np.float32)
    np.testing.assert_allclose(np.asarray(normalize(pixels)),
                               [[-0.1307 / 0.3081, (1 - 0.1307) / 0.3081]], rtol=1e-5)


def test_inference_is_deterministic():
    model = _model(dense_units=64)
    images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(images, training=False)),
                                  np.asarray(model(images, training=False)))


def test_activation_maps_show_the_conv_blocks_not_the_dense_relu(tmp_path):
    model = _model(dense_batch_norm=1)
    image = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    path = plots.activations(model, image, tmp_path / "activations.png")
    assert path.stat().st_size > 10_000


@pytest.mark.integration  # Two whole CNN trainings, mostly tracing.
def test_a_seeded_training_with_augmentation_repeats_exactly():
    from hw1_keras.mnist.model import MnistHyperModel

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 128)
    config = MnistConfig(epochs=1, dense_units=32, filters=(8, 16), batch_size=16)

    def train():
        keras.utils.set_random_seed(config.seed)
        hp = hyperparameters(config)
        trainer = MnistHyperModel.from_config(config)  # Augmented copy: on by default.
        model = trainer.build(hp)
        history = trainer.fit(hp, model, images, labels, verbose=0)
        return history.history["loss"], model.get_weights()

    (loss, weights), (loss_again, weights_again) = train(), train()
    assert loss == loss_again
    assert all(np.array_equal(a, b) for a, b in zip(weights, weights_again))


@pytest.mark.integration  # A whole command, in this process.
def test_a_resumed_training_ends_as_the_uninterrupted_one(tmp_path):
    # A resumed run is a new process: new dataset, new augmentation layers, new
    # dropout. It must go on with epoch 3's shuffle, augmented copies and
    # dropout masks, not replay epoch 1's, or a seeded run stopped half-way is
    # not the run it continues (`pipeline.SkipTrainedEpochs`).
    from hw1_keras.mnist.model import MnistHyperModel

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (192, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 192)
    config = MnistConfig(epochs=3, dense_units=32, filters=(8, 16), batch_size=32)

    class StopAfterTwoEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # Like a kill, after epoch 2's backup.

    def train(*callbacks, backup=None):
        keras.utils.set_random_seed(config.seed)
        hp = hyperparameters(config)
        trainer = MnistHyperModel.from_config(config)  # Augmented copy: on by default.
        model = trainer.build(hp)
        if backup is not None:
            callbacks = (keras.callbacks.BackupAndRestore(str(backup)), *callbacks)
        history = trainer.fit(hp, model, images, labels, verbose=0, callbacks=list(callbacks),
                              validation_data=(images[:64], labels[:64]))
        return history.history["loss"], model.get_weights()

    loss, weights = train()
    with pytest.raises(KeyboardInterrupt):
        train(StopAfterTwoEpochs(), backup=tmp_path / "backup")
    resumed_loss, resumed_weights = train(backup=tmp_path / "backup")
    assert resumed_loss == loss[2:]  # Only epoch 3 trained again, on the same batches...
    assert all(np.array_equal(a, b) for a, b in zip(weights, resumed_weights))  # ...the same way.
