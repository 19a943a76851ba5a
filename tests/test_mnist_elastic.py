"""The elastic distortion layer: smooth, seeded, black beyond the border, off at inference."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.mnist import pipeline
from hw1_keras.mnist.elastic import RandomElastic


def _digits(count=16):
    images = np.zeros((count, 28, 28, 1), np.float32)
    images[:, 6:22, 11:17] = 255.0  # A thick vertical stroke.
    return images


def test_it_moves_pixels_a_little_and_keeps_shape_and_range():
    images = _digits()
    moved = np.asarray(RandomElastic(2.0, seed=0)(images, training=True))
    assert moved.shape == images.shape and moved.dtype == np.float32
    assert 0.0 <= moved.min() and moved.max() <= 255.0 + 1e-3
    changed = np.abs(moved - images).reshape(len(images), -1).max(axis=1)
    assert (changed > 1.0).all()  # Every image distorted...
    # ...but locally: displacements of at most 2 pixels keep most of the ink.
    assert abs(moved.sum() / images.sum() - 1) < 0.1


def test_inference_and_zero_magnitude_pass_images_through_exactly():
    images = _digits()
    np.testing.assert_array_equal(RandomElastic(2.0, seed=0)(images, training=False), images)
    np.testing.assert_array_equal(RandomElastic(0.0, seed=0)(images, training=True), images)


def test_seeded_layers_repeat_and_successive_calls_differ():
    images = _digits()
    first, second = RandomElastic(2.0, seed=3), RandomElastic(2.0, seed=3)
    a, b = np.asarray(first(images)), np.asarray(second(images))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.asarray(first(images)))


def test_uncovered_border_is_black():
    white = np.full((32, 28, 28, 1), 255.0, np.float32)
    moved = np.asarray(RandomElastic(3.0, seed=1)(white, training=True))
    # Displaced inwards somewhere along an edge, each page shows some black.
    assert (moved.reshape(32, -1).min(axis=1) < 128).mean() >= 0.9


def test_augmentation_adds_it_only_when_asked():
    assert not any(isinstance(layer, RandomElastic)
                   for layer in pipeline.augmentation(10, 0.1, 0.15, seed=0).layers)
    layers = pipeline.augmentation(10, 0.1, 0.15, seed=0, elastic=1.5).layers
    assert isinstance(layers[-1], RandomElastic) and layers[-1].magnitude == 1.5


@pytest.mark.parametrize("magnitude, grid", [(-1.0, 4), (1.0, 1)])
def test_bad_settings_are_refused(magnitude, grid):
    with pytest.raises(ValueError, match="RandomElastic"):
        RandomElastic(magnitude, grid)
