"""The regression network and its training recipe, as one KerasTuner HyperModel.

`build_model(hp)` and `RegressionHyperModel.fit` read every choice from a
`keras_tuner.HyperParameters` whose defaults are `RegressionConfig`'s, so the
same code serves a fixed run (`hyperparameters(config)` pins each value) and a
search (a tuner's oracle proposes them).
"""

from __future__ import annotations

import copy
import math

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from keras import layers

from hw1_keras.multistep import MultiStepTrainer, epoch_blocks, fit_replicated
from hw1_keras.stacked import (
    EnsembleTrainer, StackedNetwork, StackedTrainer, stacked_epoch_blocks, stacked_validation,
    steps_per_epoch,
)
from hw1_keras.regression.config import ACTIVATIONS, RegressionConfig

DEFAULTS = RegressionConfig()
MAX_DEPTH = 3
# Widths for layers beyond the default depth, when a search asks for them.
EXTRA_LAYER_UNITS = 16
EXTRA_LAYER_ACTIVATION = "selu"
VALIDATION_BATCH = 1024
# With jit_compile="auto", XLA only from this many optimizer steps on. Compiling
# costs 1.5-2.5 s; XLA saves about 0.15 ms a step for one model (100,000 steps
# took 4.9 s with XLA and 19.7 s without in BENCHMARKS.md) and about 0.45 ms a
# step for 3 folds side by side, as a search runs them (10,000 steps at batch
# 100: 3.3-3.6 s with XLA, 7.4-8.5 s without, on 2 cores).
AUTO_JIT_MIN_STEPS = 5_000


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
    hp.Fixed("epochs", config.epochs)
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
    # float32 even under a mixed-precision policy: the loss needs the precision.
    outputs = layers.Dense(1, kernel_regularizer=penalty, name="y", dtype="float32")(hidden)
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

    `fit` reads `epochs` (`Fixed` at this object's `epochs` unless the search
    space declares it) and `batch_size` (an `Int` from 8 to 128, default 50,
    so a tuner with `tune_new_entries=True` searches it), and trains with
    `MultiStepTrainer`: one compiled call per `log_every` epochs, so a Keras
    "epoch" in the returned history spans `log_every` real epochs.
    `fit_folds` trains the k models of a cross-validation side by side.

    Args:
        epochs: Real passes over the training data, unless `hp` sets `epochs`.
        log_every: Epochs per compiled call, progress line and history entry.
        seed: Seeds the mini-batch order.
        jit_compile: Compile the multi-step loop with XLA (about 4x faster on
            CPU for this model, see BENCHMARKS.md); "auto": only for trainings
            of at least `AUTO_JIT_MIN_STEPS` steps, as a search's short trials
            would spend more time compiling than training.
    """

    def __init__(self, epochs: int = DEFAULTS.epochs, log_every: int = DEFAULTS.log_every,
                 seed: int = DEFAULTS.seed, jit_compile: bool | str = True, **kwargs):
        super().__init__(**kwargs)
        self.epochs = epochs
        self.log_every = log_every
        self.seed = seed
        self.jit_compile = jit_compile

    def build(self, hp):
        return build_model(hp)

    def schedule(self, hp) -> tuple[int, int]:
        """`(epochs, batch_size)` of a trial; a search may tune either."""
        epochs = hp.Fixed("epochs", self.epochs)
        batch_size = hp.Int("batch_size", 8, 128, sampling="log", default=DEFAULTS.batch_size)
        return epochs, batch_size

    def use_xla(self, steps: int) -> bool:
        """Whether a training of `steps` optimizer steps is XLA-compiled."""
        if self.jit_compile == "auto":
            return steps >= AUTO_JIT_MIN_STEPS
        return bool(self.jit_compile)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, verbose=0,
            **kwargs):
        """Trains `model` in place; returns the Keras `History`.

        Under a `tf.distribute` strategy (build and fit `model` in its scope),
        each mini-batch is split over the replicas by Keras' own `fit`, with
        the same mini-batches and one compiled call per block all the same.
        """
        epochs, batch_size = self.schedule(hp)
        batch_size = min(batch_size, len(x))
        block = epochs_per_call(epochs, self.log_every)
        blocks = epoch_blocks(
            np.asarray(x, np.float32), np.asarray(y, np.float32),
            batch_size=batch_size,
            epochs=epochs, epochs_per_call=block, seed=self.seed,
        )
        if isinstance(validation_data, tuple):
            # A cached dataset costs a third of what Keras' per-epoch adapter of
            # NumPy arrays does, which matters at 100 evaluations per run.
            validation_data = (
                tf.data.Dataset.from_tensor_slices(validation_data)
                .batch(VALIDATION_BATCH).cache()
            )
        if tf.distribute.has_strategy():
            steps, calls = steps_per_epoch(len(x), batch_size), math.ceil(epochs / block)
            last_block = epochs - (calls - 1) * block  # Epochs in the last call: the rest.
            return fit_replicated(model, blocks, block * steps, epochs=calls,
                                  last_block_steps=last_block * steps,
                                  validation_data=validation_data,
                                  callbacks=callbacks, verbose=verbose, **kwargs)
        trainer = MultiStepTrainer(model)
        trainer.compile(optimizer=model.optimizer,
                        jit_compile=self.use_xla(epochs * steps_per_epoch(len(x), batch_size)))
        return trainer.fit(
            blocks,
            epochs=math.ceil(epochs / block),
            steps_per_epoch=1,
            shuffle=False,  # epoch_blocks() already shuffles every epoch.
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=verbose,
            **kwargs,
        )

    def fit_folds(self, hp, models, x, y, folds, callbacks=None, verbose=0) -> list[dict]:
        """Trains the k models of a k-fold cross-validation at once; see `hw1_keras.stacked`.

        Model i trains on `x[folds[i][0]]` and is validated on `x[folds[i][1]]`
        every `log_every` epochs, with the same mini-batches `fit` would give
        it, in one XLA-compiled loop for all k: about as fast as training one.
        When the folds' training sets take different numbers of steps per
        epoch (the copies would fall out of step, e.g. training sets of 4 and 5
        points at batch 4), the models train one by one with `fit` instead.

        Args:
            hp: The trial's hyperparameters.
            models: k freshly built models of `build(hp)`; trained in place.
            x: All inputs, shape (N, 1).
            y: All targets, shape (N, 1).
            folds: k pairs `(train_indices, validation_indices)`.
            callbacks: Keras callbacks for the stacked training (they see the
                stacked logs: `loss`, `mse_<i>`, `val_mse_<i>`).
            verbose: Keras verbosity.

        Returns:
            One history per fold, `{"loss", "mse", "val_mse"}` -> values per
            logged block (`loss` is the sum over folds when trained at once).
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        epochs, batch_size = self.schedule(hp)
        train_sizes = [len(train) for train, _ in folds]
        # `fit` clips the batch to each fold's size; a fold smaller than this
        # common batch gets the same single full batch here, padded.
        batch_size = min(batch_size, max(train_sizes))
        if len({steps_per_epoch(size, batch_size) for size in train_sizes}) != 1:
            # Each fold its own copies of the callbacks, as KerasTuner gives each
            # execution: a callback keeps state (its model, a best value) across a fit.
            return [
                self.fit(hp, model, x[train], y[train], validation_data=(x[valid], y[valid]),
                         callbacks=copy.deepcopy(callbacks), verbose=verbose).history
                for model, (train, valid) in zip(models, folds)
            ]
        blocks = stacked_epoch_blocks(
            [x[train] for train, _ in folds], [y[train] for train, _ in folds],
            batch_size=batch_size, epochs=epochs,
            epochs_per_call=epochs_per_call(epochs, self.log_every), seed=self.seed,
        )
        validation = tf.data.Dataset.from_tensors(stacked_validation(
            [x[valid] for _, valid in folds], [y[valid] for _, valid in folds])).cache()
        history = self._fit_stacked(StackedTrainer, models, blocks, validation,
                                    steps=epochs * steps_per_epoch(train_sizes[0], batch_size),
                                    epochs=epochs, callbacks=callbacks, verbose=verbose).history
        return [
            {"loss": history["loss"], "mse": history[f"mse_{fold}"],
             "val_mse": history[f"val_mse_{fold}"]}
            for fold in range(len(folds))
        ]

    def fit_ensemble(self, hp, models, x, y, validation_data=None, callbacks=None,
                     verbose=0):
        """Trains k models of `build(hp)` on the same data at once: an ensemble.

        Model i keeps its own initialization and its own mini-batch order
        (seed `self.seed + i`, so model 0 trains as `fit` would train it
        alone), in one compiled loop for all k (`hw1_keras.stacked`).

        Args:
            hp: The hyperparameters.
            models: k freshly built models; trained in place.
            x: Inputs, shape (N, 1).
            y: Targets, shape (N, 1).
            validation_data: `(x, y)` on which the ensemble's averaged
                prediction is scored every `log_every` epochs.
            callbacks: Keras callbacks; they see the ensemble's logs (see
                `hw1_keras.stacked.EnsembleTrainer`).
            verbose: Keras verbosity.

        Returns:
            The Keras `History`: `loss` and `mse` the members' means,
            `val_loss` and `val_mse` the averaged prediction's.
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        epochs, batch_size = self.schedule(hp)
        batch_size = min(batch_size, len(x))
        blocks = stacked_epoch_blocks(
            [x] * len(models), [y] * len(models), batch_size=batch_size, epochs=epochs,
            epochs_per_call=epochs_per_call(epochs, self.log_every),
            seed=[self.seed + index for index in range(len(models))],
        )
        if validation_data is not None:
            validation_data = (tf.data.Dataset.from_tensor_slices(validation_data)
                               .batch(VALIDATION_BATCH).cache())
        return self._fit_stacked(EnsembleTrainer, models, blocks, validation_data,
                                 steps=epochs * steps_per_epoch(len(x), batch_size),
                                 epochs=epochs, callbacks=callbacks, verbose=verbose)

    def _fit_stacked(self, trainer_class, models, blocks, validation, *, steps: int,
                     epochs: int, callbacks, verbose):
        """Trains `models` side by side on stacked `blocks`; writes their weights back."""
        network = StackedNetwork(models)
        trainer = trainer_class(network)
        # The models' own optimizer settings, in one optimizer for the stack.
        optimizer = models[0].optimizer.__class__.from_config(models[0].optimizer.get_config())
        trainer.compile(optimizer=optimizer, jit_compile=self.use_xla(steps))
        block = epochs_per_call(epochs, self.log_every)
        history = trainer.fit(blocks, epochs=math.ceil(epochs / block), steps_per_epoch=1,
                              shuffle=False, validation_data=validation,
                              callbacks=callbacks, verbose=verbose)
        network.write_back()
        return history
