"""The regression network and its training recipe, as one KerasTuner HyperModel.

`build_model(hp)` and `RegressionHyperModel.fit` read every choice from a
`keras_tuner.HyperParameters` whose defaults are `RegressionConfig`'s, so the
same code serves a fixed run (`hyperparameters(config)` pins each value) and a
search (a tuner's oracle proposes them).
"""

from __future__ import annotations

import math

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from keras import layers

from hw1_keras.multistep import MultiStepTrainer, epoch_blocks
from hw1_keras.regression.config import ACTIVATIONS, RegressionConfig

DEFAULTS = RegressionConfig()
MAX_DEPTH = 3
# Widths for layers beyond the default depth, when a search asks for them.
EXTRA_LAYER_UNITS = 16
EXTRA_LAYER_ACTIVATION = "selu"
VALIDATION_BATCH = 1024


def hyperparameters(config: RegressionConfig) -> keras_tuner.HyperParameters:
    """Pins every hyperparameter `build_model` and `fit` read to `config`'s value."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed("depth", len(config.units))
    for index, (units, activation) in enumerate(zip(config.units, config.activations), 1):
        hp.Fixed(f"units_{index}", units)
        hp.Fixed(f"activation_{index}", activation)
    hp.Fixed("learning_rate", config.learning_rate)
    hp.Fixed("weight_decay", config.weight_decay)
    hp.Fixed("batch_size", config.batch_size)
    return hp


def build_model(hp: keras_tuner.HyperParameters | None = None) -> keras.Model:
    """Builds and compiles the MLP: Dense(16, SELU) -> Dense(64, sigmoid) -> Dense(1).

    Args:
        hp: Hyperparameters; missing ones take `RegressionConfig`'s defaults.
            Reads `depth`, `units_i`, `activation_i` (i = 1..depth),
            `weight_decay` and `learning_rate`.

    Returns:
        A compiled Functional model mapping x of shape (N, 1) to (N, 1). Every
        kernel carries an L2 penalty `weight_decay / 2 * sum(w**2)`, whose
        gradient `weight_decay * w` is PyTorch's (and the homework's) weight
        decay for Adam.
    """
    hp = hp if hp is not None else keras_tuner.HyperParameters()
    depth = hp.Int("depth", 1, MAX_DEPTH, default=len(DEFAULTS.units))
    weight_decay = hp.Float("weight_decay", 1e-5, 1e-1, sampling="log",
                            default=DEFAULTS.weight_decay)
    penalty = keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None

    inputs = keras.Input(shape=(1,), name="x")
    hidden = inputs
    for index in range(1, depth + 1):
        default_units = (DEFAULTS.units[index - 1] if index <= len(DEFAULTS.units)
                         else EXTRA_LAYER_UNITS)
        default_activation = (DEFAULTS.activations[index - 1]
                              if index <= len(DEFAULTS.activations)
                              else EXTRA_LAYER_ACTIVATION)
        units = hp.Int(f"units_{index}", 4, 128, sampling="log", default=default_units)
        activation = hp.Choice(f"activation_{index}", list(ACTIVATIONS),
                               default=default_activation)
        hidden = layers.Dense(
            units,
            activation=activation,
            # SELU's self-normalization assumes LeCun-normal weights.
            kernel_initializer="lecun_normal" if activation == "selu" else "glorot_uniform",
            kernel_regularizer=penalty,
            name=f"hidden_{index}",
        )(hidden)
    outputs = layers.Dense(1, kernel_regularizer=penalty, name="y")(hidden)
    model = keras.Model(inputs, outputs, name="regression_mlp")

    learning_rate = hp.Float("learning_rate", 1e-5, 1e-1, sampling="log",
                             default=DEFAULTS.learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def epochs_per_call(epochs: int, log_every: int) -> int:
    """Epochs run per compiled call: `log_every`, or all of them when fewer."""
    return max(1, min(epochs, log_every))


class RegressionHyperModel(keras_tuner.HyperModel):
    """`build_model` plus the fast mini-batch training loop.

    `fit` tunes `batch_size`, and trains with `MultiStepTrainer`: one compiled
    call per `log_every` epochs, so a Keras "epoch" in the returned history
    spans `log_every` real epochs.

    Args:
        epochs: Real passes over the training data.
        log_every: Epochs per compiled call, progress line and history entry.
        seed: Seeds the mini-batch order.
        jit_compile: Compile the multi-step loop with XLA (about 3x faster on
            CPU for this model, see BENCHMARKS.md).
    """

    def __init__(self, epochs: int = DEFAULTS.epochs, log_every: int = DEFAULTS.log_every,
                 seed: int = DEFAULTS.seed, jit_compile: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.epochs = epochs
        self.log_every = log_every
        self.seed = seed
        self.jit_compile = jit_compile

    def build(self, hp):
        return build_model(hp)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, verbose=0,
            **kwargs):
        """Trains `model` in place; returns the Keras `History`."""
        batch_size = hp.Int("batch_size", 8, 128, sampling="log",
                            default=DEFAULTS.batch_size)
        block = epochs_per_call(self.epochs, self.log_every)
        trainer = MultiStepTrainer(model)
        trainer.compile(optimizer=model.optimizer, jit_compile=self.jit_compile)
        blocks = epoch_blocks(
            np.asarray(x, np.float32), np.asarray(y, np.float32),
            batch_size=min(batch_size, len(x)),
            epochs=self.epochs, epochs_per_call=block, seed=self.seed,
        )
        if isinstance(validation_data, tuple):
            # A cached dataset costs a third of what Keras' per-epoch adapter of
            # NumPy arrays does, which matters at 100 evaluations per run.
            validation_data = (
                tf.data.Dataset.from_tensor_slices(validation_data)
                .batch(VALIDATION_BATCH).cache()
            )
        return trainer.fit(
            blocks,
            epochs=math.ceil(self.epochs / block),
            steps_per_epoch=1,
            shuffle=False,  # epoch_blocks() already shuffles every epoch.
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=verbose,
            **kwargs,
        )
