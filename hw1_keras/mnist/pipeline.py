"""tf.data pipelines for MNIST: shuffled batches, augmented copies, prefetching.

Images stay uint8 in memory and become float32 raw pixels (0-255) per batch;
normalization lives inside the model, so the exported model takes raw pixels
too. Augmentation runs only here, in the training pipeline: the model has no
random layers, so validation, test and inference never see it.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from hw1_keras.mnist.elastic import RandomElastic

AUTOTUNE = tf.data.AUTOTUNE
ITERATORS_PER_EPOCH = 2  # Opened over the training data by each epoch of Keras' fit.


def augmentation(rotation: float, translation: float, shear: float, seed: int,
                 zoom: float = 0.0, elastic: float = 0.0) -> keras.Sequential:
    """Random rotation, translation, shear, zoom and elastic distortion, black fill.

    Args:
        rotation: Maximum rotation in degrees, either way.
        translation: Maximum shift as a fraction of the image size, both axes.
        shear: Maximum shear factor, both axes.
        seed: Seeds the layers.
        zoom: Maximum zoom in or out as a fraction of the size, both axes
            together (0: no zoom layer at all).
        elastic: Largest elastic displacement in pixels (`RandomElastic`;
            0: no elastic layer at all).
    """
    # float32 even under a mixed-precision policy: tf.data runs on the CPU.
    black = {"fill_mode": "constant", "fill_value": 0.0, "dtype": "float32"}
    steps = [
        layers.RandomRotation(rotation / 360.0, seed=seed, **black),
        layers.RandomTranslation(translation, translation, seed=seed + 1, **black),
        layers.RandomShear(shear, shear, seed=seed + 2, **black),
    ]
    if zoom > 0:
        # width_factor=None keeps the aspect ratio: a digit grows or shrinks, not stretches.
        steps.append(layers.RandomZoom(zoom, None, seed=seed + 3, **black))
    if elastic > 0:
        steps.append(RandomElastic(elastic, seed=seed + 4, dtype="float32"))
    return keras.Sequential(steps, name="augmentation")


class TrainingStream(NamedTuple):
    """The training batches, and how to move them past epochs already trained."""

    dataset: tf.data.Dataset
    skip_epochs: Callable[[int], None]


def training_dataset(images: np.ndarray, labels: np.ndarray, **options) -> tf.data.Dataset:
    """`training_stream(images, labels, **options).dataset`, for a run that never resumes."""
    return training_stream(images, labels, **options).dataset


def training_stream(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    augment: keras.Layer | None,
    copies: int = 2,
) -> TrainingStream:
    """One epoch = every image `copies` times; all copies but the first augmented.

    As in the homework, an epoch trains on the originals plus an augmented copy
    of each (96k samples for 48k images); the copy is drawn afresh every epoch,
    and originals and copies are shuffled together.

    Args:
        images: uint8 (N, 28, 28).
        labels: Integer labels (N,).
        batch_size: Images per step.
        seed: Seeds the shuffle.
        augment: The augmentation layer for the copies; None sends the copies
            through unchanged (the throughput baseline).
        copies: How many times each image appears per epoch.

    Returns:
        The dataset, of `(float32 images (B, 28, 28, 1), int64 labels (B,))`,
        and `skip_epochs(n)`, which moves its shuffle and augmentation on by
        the n epochs an interrupted `fit` of it finished (`SkipTrainedEpochs`).
    """
    count = len(images)
    pixels = tf.constant(images[..., np.newaxis])
    targets = tf.constant(labels.astype(np.int64))

    def gather(index):
        image = tf.cast(tf.gather(pixels, index % count), tf.float32)
        return image, tf.gather(targets, index % count), index >= count

    def augment_copies(image, label, is_copy):
        changed = augment(image, training=True)
        return tf.where(is_copy[:, tf.newaxis, tf.newaxis, tf.newaxis], changed, image), label

    order = (tf.data.Dataset.range(copies * count)
             .shuffle(copies * count, seed=seed, reshuffle_each_iteration=True))
    dataset = order.batch(batch_size).map(gather, num_parallel_calls=AUTOTUNE)
    if augment is not None:
        # One batch at a time: each call draws from the layers' seed generators
        # (variables), so parallel calls would take the draws in whatever order
        # threads run, and a seeded run would not repeat. The transforms
        # themselves still use every core (intra-op), and prefetch overlaps
        # them with training.
        dataset = dataset.map(augment_copies)
    else:
        dataset = dataset.map(lambda image, label, _: (image, label))

    def skip_epochs(epochs: int) -> None:
        # Every iterator over `dataset` draws the next shuffle from a seed state
        # it shares with `order`, and Keras' fit opens two per epoch (the second,
        # opened at the epoch's end, it drops unused: EpochIterator, Keras 3.15).
        # Passing over the indices alone is cheap.
        for _ in range(ITERATORS_PER_EPOCH * epochs):
            order.reduce(np.int64(0), lambda total, _: total)
        if augment is not None:
            advance_seed_generators(augment, epochs * math.ceil(copies * count / batch_size))

    return TrainingStream(dataset.prefetch(AUTOTUNE), skip_epochs)


def advance_seed_generators(layer: keras.Layer, calls: int,
                            sample: np.ndarray | None = None) -> None:
    """Moves every seed generator in `layer` on by `calls` calls in training mode.

    A `SeedGenerator` adds a fixed step to its state per draw, and a layer
    draws the same number of times per call, whatever the batch size; one
    call on one blank input measures that, and its other effects are undone.

    Args:
        layer: The augmentation, or one of the model's dropout layers.
        calls: How many training-mode calls to move past.
        sample: One blank input for `layer` (default: one 28x28x1 image).
    """
    variables = layer.variables
    before = [variable.numpy() for variable in variables]
    layer(np.zeros((1, 28, 28, 1), np.float32) if sample is None else sample, training=True)
    steps = [(variable, variable.numpy() - start) for variable, start in zip(variables, before)
             if variable.path.endswith("seed_generator_state")]
    for variable, start in zip(variables, before):
        variable.assign(start)
    for variable, step in steps:
        variable.assign(variable.numpy() + calls * step)


class SkipTrainedEpochs(keras.callbacks.Callback):
    """Starts a resumed run's randomness where the interrupted run's stopped.

    `BackupAndRestore` restores the weights, the optimizer and the epoch
    count, but not the seed generators (they are not weights), and a resumed
    run is a new process: its shuffle, augmentation and dropout would start
    again at epoch 1's, and the resumed epochs would replay the first ones'.
    Listed after the backup callback, this moves all three on by the epochs
    the backup holds, so that a seeded run stopped half-way ends as it would
    have (`test_a_resumed_training_ends_as_the_uninterrupted_one`).

    Args:
        skip_epochs: `TrainingStream.skip_epochs` of the dataset being fit.
        steps_per_epoch: The model's training steps per epoch.
    """

    def __init__(self, skip_epochs: Callable[[int], None], steps_per_epoch: int):
        super().__init__()
        self.skip_epochs = skip_epochs
        self.steps_per_epoch = steps_per_epoch

    def on_train_begin(self, logs=None):
        # Where BackupAndRestore tells fit to start (fit reads it right after
        # the callbacks' on_train_begin).
        trained = getattr(self.model, "_initial_epoch", None) or 0
        if trained:
            self.skip_epochs(trained)
            # Each dropout layer alone, on a blank input of its shape: calling the
            # whole model would run its BatchNorm too (synchronized across
            # replicas under a strategy).
            for layer in self.model.layers:
                if any(v.path.endswith("seed_generator_state") for v in layer.variables):
                    sample = np.zeros([1, *layer.input.shape[1:]], np.float32)
                    advance_seed_generators(layer, trained * self.steps_per_epoch, sample)


def evaluation_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int = 512):
    """Validation/test batches in order: raw pixels, never augmented."""
    return (
        tf.data.Dataset.from_tensor_slices((images[..., np.newaxis], labels.astype(np.int64)))
        .batch(batch_size)
        .map(lambda image, label: (tf.cast(image, tf.float32), label))
        .prefetch(AUTOTUNE)
    )


def fixed_batches(images: np.ndarray, batch_size: int = 128,
                  augment: keras.Layer | None = None) -> list[np.ndarray]:
    """`images` (uint8, (N, 28, 28)) as model-ready float32 batches, in order.

    For re-estimating BatchNorm's statistics on the same images every time
    (`hw1_keras.training.settle_batch_norm`). Those statistics should be the
    ones the weights were trained under: with `augment`, every other image is
    drawn through it once, as training batches mix originals and augmented
    copies half and half. (Clean images alone, measured on the five default
    runs' checkpoints, cost 0.02-0.07 test points; BENCHMARKS.md.)
    """
    pixels = images[..., np.newaxis].astype("float32")
    if augment is not None:
        pixels[1::2] = keras.ops.convert_to_numpy(augment(pixels[1::2], training=True))
    return [pixels[start:start + batch_size] for start in range(0, len(pixels), batch_size)]
