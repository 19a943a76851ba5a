"""Photos of digits: uneven light is evened out; each kind of photo reads like an even one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from benchmarks.photos import LIGHTS, photograph
from hw1_keras.photos.images import to_mnist
from hw1_keras.photos.paper import ink_strength


@pytest.fixture(scope="module")
def digits(mnist_file):
    with np.load(mnist_file) as archive:
        return archive["x_test"][:5]


@pytest.mark.parametrize("light", [light for light in LIGHTS if light != "even"])
def test_each_kind_of_photo_reads_as_an_evenly_lit_one(digits, light):
    # The same digit, size and place on the page. Unless the light is evened
    # out, printed lines erased and desks left out, the crop takes in the
    # darker paper, the speck, the lines or the desk, and these differ by
    # 20-56 grey levels on average; read right, by a pixel's shift at most.
    differences = [
        np.abs(to_mnist(photograph(digit, light, np.random.default_rng(1))).astype(int)
               - to_mnist(photograph(digit, "even", np.random.default_rng(1)))).mean()
        for digit in digits]
    assert np.mean(differences) < 8, differences


def test_an_evenly_lit_image_keeps_its_greys():
    page = np.full((40, 50), 230.0)
    page[10:30, 20:26] = 30.0
    strength = ink_strength(page)
    np.testing.assert_array_equal(strength, np.clip((255 - page) - 25.0, 0, None))


def test_dark_ink_counts_as_much_in_shadow_as_in_full_light():
    # Two equal strokes on paper lit at 100% on the left, 50% on the right.
    light = np.where(np.arange(120) < 60, 1.0, 0.5)[np.newaxis, :].repeat(80, axis=0)
    reflected = np.full((80, 120), 0.9)
    reflected[20:60, 25:30] = reflected[20:60, 85:90] = 0.1
    strength = ink_strength(255.0 * light * reflected)
    left, right = strength[20:60, 25:30].mean(), strength[20:60, 85:90].mean()
    assert right == pytest.approx(left, rel=0.05)
    assert strength[:, 40:50].max() < 0.1 * left  # The paper is paper on both sides.


def _lit_page(reflected, lowest, noise=0.0, seed=0):
    """`reflected` under light falling from 100% at the left to `lowest` at the right."""
    light = np.linspace(1.0, lowest, reflected.shape[1])[np.newaxis, :]
    grey = 255.0 * light * reflected + np.random.default_rng(seed).normal(0, noise, reflected.shape)
    return np.clip(grey, 0, 255)


def test_camera_noise_in_deep_shadow_is_not_ink():
    reflected = np.full((300, 400), 0.9)
    reflected[100:200, 60:66] = 0.1  # A stroke in full light; the right side is at 20%.
    strength = ink_strength(_lit_page(reflected, 0.2, noise=5.0))
    ink = strength > 0.2 * strength.max()
    assert ink[100:200, 60:66].mean() > 0.9
    assert ink[:, 200:].mean() < 0.001  # The noise there is amplified 4x by the light's gain.


@pytest.mark.parametrize("index", range(5))
def test_a_tightly_cropped_marker_digit_in_even_light_keeps_its_strokes(digits, index):
    # Strokes thickened 5x5, cropped to the ink and enlarged 10x: whole
    # blocks of the image are ink or the soft edges of strokes, which a light
    # test judged by whole blocks takes for shaded paper, hollowing the strokes.
    marker = np.asarray(Image.fromarray(digits[index]).filter(ImageFilter.MaxFilter(5)))
    rows, columns = np.flatnonzero(marker.max(axis=1) > 60), np.flatnonzero(marker.max(axis=0) > 60)
    marker = marker[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    enlarged = Image.fromarray(marker).resize((marker.shape[1] * 10, marker.shape[0] * 10),
                                              Image.Resampling.BILINEAR)
    reflected = 0.9 - 0.8 * np.asarray(enlarged) / 255.0
    strength = ink_strength(_lit_page(reflected, 1.0, noise=3.0, seed=index))
    core = np.asarray(enlarged) > 200
    assert (strength[core] > 0.5 * strength.max()).mean() > 0.95
