"""tf.data pipelines for MNIST: shuffled batches, augmented copies, prefetching.

Images stay uint8 in memory and become float32 raw pixels (0-255) per batch;
normalization lives inside the model, so the exported model takes raw pixels
too. Augmentation runs only here, in the training pipeline: the model has no
random layers, so validation, test and inference never see it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from hw1_keras.mnist.elastic import RandomElastic

AUTOTUNE = tf.data.AUTOTUNE


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


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    augment: keras.Layer | None,
    copies: int = 2,
) -> tf.data.Dataset:
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
        A dataset of `(float32 images (B, 28, 28, 1), int64 labels (B,))`.
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

    dataset = (
        tf.data.Dataset.range(copies * count)
        .shuffle(copies * count, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(gather, num_parallel_calls=AUTOTUNE)
    )
    if augment is not None:
        # One batch at a time: each call draws from the layers' seed generators
        # (variables), so parallel calls would take the draws in whatever order
        # threads run, and a seeded run would not repeat. The transforms
        # themselves still use every core (intra-op), and prefetch overlaps
        # them with training.
        dataset = dataset.map(augment_copies)
    else:
        dataset = dataset.map(lambda image, label, _: (image, label))
    return dataset.prefetch(AUTOTUNE)


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
