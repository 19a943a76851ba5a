"""The MNIST CNN and its training recipe, as one KerasTuner HyperModel.

`build_model(hp)` exposes everything the homework's studies vary (depth,
filters, dense units, dropout, batch norm, max-pool versus stride-2), with
`MnistConfig`'s values as defaults; `hyperparameters(config)` pins them for a
fixed run. `serving_function(model)` is what both exports serve: raw digits
in, probabilities out.
"""

from __future__ import annotations

import math

import keras
import keras_tuner
import tensorflow as tf
from keras import layers

from hw1_keras import replicas
from hw1_keras.mnist import pipeline
from hw1_keras.mnist.config import DOWNSAMPLING, MnistConfig

DEFAULTS = MnistConfig()
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
DEFAULT_FILTERS = (32, 64, 128)  # Per block, when a search asks for more blocks.
WARMUP_EPOCHS = 1


def hyperparameters(config: MnistConfig) -> keras_tuner.HyperParameters:
    """Pins every hyperparameter `build_model` and `fit` read to `config`'s value."""
    hp = keras_tuner.HyperParameters()
    hp.Fixed("conv_blocks", len(config.filters))
    for index, filters in enumerate(config.filters, 1):
        hp.Fixed(f"filters_{index}", filters)
    for name in ("dense_units", "dropout", "dense_dropout", "batch_norm", "dense_batch_norm",
                 "downsampling", "learning_rate", "weight_decay", "label_smoothing",
                 "ema_momentum", "batch_size"):
        hp.Fixed(name, getattr(config, name))
    return hp


def build_model(hp: keras_tuner.HyperParameters | None = None) -> keras.Model:
    """Builds and compiles the CNN: [Conv 3x3 -> BN -> ReLU -> MaxPool] x blocks.

    Then Dropout -> Flatten -> Dense (-> BN if `dense_batch_norm`) -> ReLU ->
    Dropout -> Dense(10) logits. The model takes raw pixels (0-255, shape
    (N, 28, 28, 1)) and normalizes them itself with MNIST's mean and standard
    deviation.

    Args:
        hp: Hyperparameters; missing ones take `MnistConfig`'s defaults.

    Returns:
        A Functional model compiled with AdamW at a constant learning rate and
        cross-entropy on logits; `MnistHyperModel.fit` recompiles it with the
        warm-up + cosine schedule once the number of steps is known.
    """
    hp = hp if hp is not None else keras_tuner.HyperParameters()
    blocks = hp.Int("conv_blocks", 1, 3, default=len(DEFAULTS.filters))
    batch_norm = hp.Int("batch_norm", 0, 1, default=DEFAULTS.batch_norm)
    downsampling = hp.Choice("downsampling", list(DOWNSAMPLING), default=DEFAULTS.downsampling)

    replicated = tf.distribute.get_strategy().num_replicas_in_sync > 1
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Rescaling(1.0 / (255.0 * MNIST_STD), offset=-MNIST_MEAN / MNIST_STD,
                         name="normalize")(inputs)
    for index in range(1, blocks + 1):
        default = (DEFAULTS.filters[index - 1] if index <= len(DEFAULTS.filters)
                   else DEFAULT_FILTERS[index - 1])
        filters = hp.Int(f"filters_{index}", 8, 256, sampling="log", default=default)
        stride = 2 if downsampling == "stride" else 1
        x = layers.Conv2D(filters, 3, strides=stride, padding="same",
                          use_bias=not batch_norm,  # BN's shift makes a bias redundant.
                          name=f"conv_{index}")(x)
        if batch_norm:
            # Under a strategy with several replicas, statistics over the global
            # batch (as on one device), not over each replica's slice of it.
            x = layers.BatchNormalization(name=f"batch_norm_{index}",
                                          synchronized=replicated)(x)
        x = layers.ReLU(name=f"relu_{index}")(x)
        if downsampling == "maxpool":
            x = layers.MaxPooling2D(name=f"max_pool_{index}")(x)
    x = layers.Dropout(hp.Float("dropout", 0.0, 0.6, default=DEFAULTS.dropout),
                       name="conv_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    dense_batch_norm = hp.Int("dense_batch_norm", 0, 1, default=DEFAULTS.dense_batch_norm)
    x = layers.Dense(hp.Int("dense_units", 32, 4096, sampling="log",
                            default=DEFAULTS.dense_units),
                     activation=None if dense_batch_norm else "relu",
                     use_bias=not dense_batch_norm, name="dense")(x)
    if dense_batch_norm:
        x = layers.BatchNormalization(name="dense_batch_norm", synchronized=replicated)(x)
        x = layers.ReLU(name="dense_relu")(x)
    x = layers.Dropout(hp.Float("dense_dropout", 0.0, 0.7, default=DEFAULTS.dense_dropout),
                       name="dense_dropout")(x)
    # float32 logits under mixed precision: softmax and the loss need the range.
    logits = layers.Dense(10, name="logits", dtype="float32")(x)
    model = keras.Model(inputs, logits, name="mnist_cnn")
    compile_model(model, hp, learning_rate=hp.Float(
        "learning_rate", 1e-4, 1e-2, sampling="log", default=DEFAULTS.learning_rate))
    return model


def compile_model(model: keras.Model, hp: keras_tuner.HyperParameters, learning_rate,
                  jit_compile: bool | str = "auto") -> None:
    """Compiles with AdamW (keeping a weight average when `ema_momentum` > 0)
    and label-smoothed cross-entropy on logits.

    `jit_compile`: XLA on or off; "auto" is Keras' choice (off on CPU).
    """
    weight_decay = hp.Float("weight_decay", 0.0, 0.2, default=DEFAULTS.weight_decay)
    smoothing = hp.Float("label_smoothing", 0.0, 0.2, default=DEFAULTS.label_smoothing)
    ema_momentum = hp.Float("ema_momentum", 0.0, 0.9999, default=DEFAULTS.ema_momentum)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate, weight_decay=weight_decay,
            # The average only serves validation and the checkpoint (see
            # `ValidateAveragedWeights`); training goes on from the raw weights.
            use_ema=ema_momentum > 0, ema_momentum=ema_momentum or 0.99),
        # Keras' sparse cross-entropy has no label smoothing; the dense one does.
        loss=SparseSmoothedCrossEntropy(smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


@keras.saving.register_keras_serializable(package="hw1_keras")
class SparseSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy on logits from integer labels, with label smoothing."""

    def __init__(self, label_smoothing: float = 0.0, name="cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), 10)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def learning_rate_schedule(peak: float, steps_per_epoch: int, epochs: int):
    """Linear warm-up over `WARMUP_EPOCHS`, then cosine decay to 1% of the peak."""
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, (epochs * steps_per_epoch) // 2)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100,
        decay_steps=max(1, epochs * steps_per_epoch - warmup),
        alpha=0.01,
        warmup_target=peak,
        warmup_steps=warmup,
    )


class MnistHyperModel(keras_tuner.HyperModel):
    """`build_model` plus the augmented tf.data pipeline and the LR schedule.

    Args:
        epochs: Epochs to train.
        seed: Seeds the shuffle and the augmentation.
        augmented_copy: 1: each epoch is the originals plus an augmented copy;
            0: the originals alone.
        rotation, translation, shear, zoom, elastic: The augmentation's strengths.
        jit_compile: XLA for the training step: True, False or "auto"
            (Keras' choice, off on CPU).
    """

    def __init__(self, epochs: int = DEFAULTS.epochs, seed: int = DEFAULTS.seed,
                 augmented_copy: int = DEFAULTS.augmented_copy,
                 rotation: float = DEFAULTS.rotation, translation: float = DEFAULTS.translation,
                 shear: float = DEFAULTS.shear, zoom: float = DEFAULTS.zoom,
                 elastic: float = DEFAULTS.elastic, jit_compile: bool | str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.epochs = epochs
        self.jit_compile = jit_compile
        self.seed = seed
        self.copies = 1 + augmented_copy
        self.augment = (pipeline.augmentation(rotation, translation, shear, seed, zoom, elastic)
                        if augmented_copy else None)

    @classmethod
    def from_config(cls, config: MnistConfig, epochs: int | None = None,
                    jit_compile: bool | str = "auto") -> MnistHyperModel:
        """The training recipe of `config`, for `epochs` (default: `config.epochs`)."""
        return cls(epochs=config.epochs if epochs is None else epochs, seed=config.seed,
                   augmented_copy=config.augmented_copy, rotation=config.rotation,
                   translation=config.translation, shear=config.shear, zoom=config.zoom,
                   elastic=config.elastic, jit_compile=jit_compile)

    def build(self, hp):
        return build_model(hp)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, verbose=1,
            **kwargs):
        """Trains `model` on uint8 images `x`, labels `y`; returns the History."""
        batch_size = hp.Int("batch_size", 16, 512, sampling="log", default=DEFAULTS.batch_size)
        stream = pipeline.training_stream(x, y, batch_size=batch_size, seed=self.seed,
                                          augment=self.augment, copies=self.copies)
        train = stream.dataset
        steps_per_epoch = math.ceil(self.copies * len(x) / batch_size)
        # Last, after any backup callback, which sets the epoch to resume at.
        callbacks = [*(callbacks or []),
                     pipeline.SkipTrainedEpochs(stream.skip_epochs, steps_per_epoch)]
        peak = hp.get("learning_rate")
        compile_model(model, hp, learning_rate_schedule(peak, steps_per_epoch, self.epochs),
                      self.jit_compile)
        if validation_data is not None:
            validation_data = pipeline.evaluation_dataset(*validation_data)
        replicas.prepare_fit(model, train)
        return model.fit(train, epochs=self.epochs, validation_data=validation_data,
                         callbacks=callbacks, verbose=verbose,
                         shuffle=False,  # The pipeline shuffles every epoch.
                         **kwargs)


def serving_function(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """Raw digits in, class probabilities out, in inference mode.

    Traced for uint8 and float32 images of shape (N, 28, 28) and (N, 28, 28, 1)
    with pixel values 0-255, so the SavedModel accepts all four.
    """

    @tf.function
    def serve(images):
        images = tf.cast(images, tf.float32)
        if images.shape.rank == 3:
            images = images[..., tf.newaxis]
        return tf.nn.softmax(model(images, training=False), axis=-1)

    for dtype in (tf.uint8, tf.float32):
        for shape in ((None, 28, 28), (None, 28, 28, 1)):
            serve.get_concrete_function(tf.TensorSpec(shape, dtype, name="images"))
    return serve
