"""The tf.data pipelines: augmented copies in training, untouched evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.mnist import pipeline


def _digits(count=64, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 8:20, 10:18] = rng.integers(100, 256, (count, 12, 8))
    # Random ink makes every image distinct, so tests can match images to originals.
    return images, np.arange(count) % 10


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_an_epoch_is_the_originals_plus_one_augmented_copy():
    images, labels = _digits()
    augment = pipeline.augmentation(10, 0.1, 0.15, seed=1)
    dataset = pipeline.training_dataset(images, labels, batch_size=16, seed=0, augment=augment)
    seen, seen_labels = _collect(dataset)
    assert seen.shape == (128, 28, 28, 1) and seen.dtype == np.float32
    assert np.bincount(seen_labels).tolist() == (2 * np.bincount(labels)).tolist()
    originals = {image.tobytes() for image in images.astype(np.float32)}
    unchanged = sum(image[..., 0].tobytes() in originals for image in seen)
    assert unchanged == 64  # Every original once; every copy altered.


def test_copies_change_from_epoch_to_epoch():
    images, labels = _digits()
    augment = pipeline.augmentation(10, 0.1, 0.15, seed=1)
    dataset = pipeline.training_dataset(images, labels, batch_size=128, seed=0, augment=augment)
    first, second = _collect(dataset)[0], _collect(dataset)[0]
    assert not np.array_equal(np.sort(first.ravel()), np.sort(second.ravel()))


def test_the_same_seeds_give_the_same_augmented_epochs():
    # Many small batches, so that a parallel map would have several augmenting at once.
    images, labels = _digits(512)

    def two_epochs():
        augment = pipeline.augmentation(10, 0.1, 0.15, seed=1, zoom=0.1)
        dataset = pipeline.training_dataset(images, labels, batch_size=8, seed=0,
                                            augment=augment)
        return [_collect(dataset)[0] for _ in range(2)]

    first, again = two_epochs(), two_epochs()
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])


@pytest.mark.parametrize("strengths, layer_index", [
    ((30, 0, 0), 0),     # rotation
    ((0, 0.3, 0), 1),    # translation
    ((0, 0, 0.5), 2),    # shear
])
def test_augmentation_fills_with_black_not_reflections(strengths, layer_index):
    # A white page moved with "reflect" (Keras' default) stays white; with
    # MNIST's black fill, the uncovered part turns black.
    white = np.full((32, 28, 28, 1), 255.0, np.float32)
    layer = pipeline.augmentation(*strengths, seed=2).layers[layer_index]
    moved = np.asarray(layer(white, training=True))
    assert (moved.reshape(32, -1).min(axis=1) < 1.0).mean() >= 0.5


def test_zoom_is_a_fourth_layer_that_keeps_the_aspect_and_fills_black():
    assert len(pipeline.augmentation(10, 0.1, 0.15, seed=2).layers) == 3  # zoom 0: no layer
    zoom = pipeline.augmentation(0, 0, 0, seed=2, zoom=0.3).layers[3]
    assert zoom.width_factor is None
    white = np.full((32, 28, 28, 1), 255.0, np.float32)
    moved = np.asarray(zoom(white, training=True))
    # Zooming out uncovers a black border; zooming in leaves the page white.
    assert 0.2 <= (moved.reshape(32, -1).min(axis=1) < 1.0).mean() <= 0.8


def test_without_augmentation_the_copies_are_exact():
    images, labels = _digits()
    dataset = pipeline.training_dataset(images, labels, batch_size=10, seed=0, augment=None)
    seen, _ = _collect(dataset)
    originals = {image.tobytes() for image in images.astype(np.float32)}
    assert all(image[..., 0].tobytes() in originals for image in seen)


def test_evaluation_is_never_augmented_and_keeps_order():
    images, labels = _digits()
    seen, seen_labels = _collect(pipeline.evaluation_dataset(images, labels, batch_size=10))
    np.testing.assert_array_equal(seen[..., 0], images.astype(np.float32))
    np.testing.assert_array_equal(seen_labels, labels)


def test_settle_batches_mix_originals_and_augmented_images_like_training():
    images, _ = _digits(count=40)
    augment = pipeline.augmentation(10, 0.1, 0.15, seed=1)
    batches = pipeline.fixed_batches(images, batch_size=16, augment=augment)
    assert [len(batch) for batch in batches] == [16, 16, 8]
    seen = np.concatenate(batches)[..., 0]
    assert seen.dtype == np.float32
    np.testing.assert_array_equal(seen[0::2], images[0::2].astype(np.float32))
    assert all(not np.array_equal(a, b) for a, b in zip(seen[1::2], images[1::2]))
    clean = np.concatenate(pipeline.fixed_batches(images, batch_size=16))[..., 0]
    np.testing.assert_array_equal(clean, images.astype(np.float32))
