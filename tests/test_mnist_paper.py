"""Photos of digits: uneven light is evened out, specks away from the digit left out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from hw1_keras.bench_photos import LIGHTS, photograph
from hw1_keras.mnist.images import to_mnist
from hw1_keras.mnist.paper import NEAR, PART_NEAR, _label, digit_ink, ink_strength


@pytest.fixture(scope="module")
def digits(mnist_file):
    with np.load(mnist_file) as archive:
        return archive["x_test"][:5]


@pytest.mark.parametrize("light", [light for light in LIGHTS if light != "even"])
def test_a_photo_in_uneven_light_or_with_a_speck_reads_as_an_evenly_lit_one(digits, light):
    # The same digit, size and place on the page; before the light was evened
    # out these differed by 23-56 grey levels on average (the crop took in
    # the darker paper or the speck), now by 0-13 (a pixel's shift at most).
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


def _digit_and(patch_at, patch_size):
    """A 40-pixel-tall stroke and a square patch `patch_at` pixels to its right."""
    ink = np.zeros((100, 200), bool)
    ink[30:70, 50:56] = True
    left = 56 + patch_at
    ink[48:48 + patch_size, left:left + patch_size] = True
    return ink


def test_a_speck_away_from_the_digit_is_left_out():
    ink = _digit_and(patch_at=100, patch_size=2)
    kept = digit_ink(ink)
    assert kept[30:70, 50:56].all() and kept.sum() == 40 * 6


@pytest.mark.parametrize("patch_size, gap_share, kept", [
    (2, NEAR - 0.05, True),  # Any ink this near: a dot of a broken stroke.
    (2, PART_NEAR - 0.1, False),  # A speck a little further.
    (6, PART_NEAR - 0.1, True),  # A sizeable patch as far: a 5's detached bar.
    (6, PART_NEAR + 0.1, False),
])
def test_ink_near_the_digit_is_part_of_it(patch_size, gap_share, kept):
    ink = _digit_and(patch_at=round(gap_share * 40), patch_size=patch_size)
    assert (digit_ink(ink).sum() == ink.sum()) == kept


def test_patches_join_through_others_near_them():
    ink = np.zeros((60, 300), bool)
    for left in range(10, 290, 12):  # A dotted line, each dot near the next only.
        ink[26:34, left:left + 8] = True
    assert digit_ink(ink).sum() == ink.sum()


def test_patches_are_8_connected():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # Touching at corners: one patch.
    mask[5, 5] = True
    labels = _label(mask)
    assert labels[0, 0] == labels[1, 1] == labels[2, 2] != labels[5, 5]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert set(np.unique(_label(np.ones((4, 4), bool)))) == {1}  # All ink: one patch.


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
    # blocks of the image are ink or the soft edges of strokes, which an
    # earlier light test took for shaded paper, hollowing the strokes.
    marker = np.asarray(Image.fromarray(digits[index]).filter(ImageFilter.MaxFilter(5)))
    rows, columns = np.flatnonzero(marker.max(axis=1) > 60), np.flatnonzero(marker.max(axis=0) > 60)
    marker = marker[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    enlarged = Image.fromarray(marker).resize((marker.shape[1] * 10, marker.shape[0] * 10),
                                              Image.Resampling.BILINEAR)
    reflected = 0.9 - 0.8 * np.asarray(enlarged) / 255.0
    strength = ink_strength(_lit_page(reflected, 1.0, noise=3.0, seed=index))
    core = np.asarray(enlarged) > 200
    assert (strength[core] > 0.5 * strength.max()).mean() > 0.95


def _stroke_digit(shape=(150, 200)):
    """A ring of ink, 60 pixels across, clear of the image's edges."""
    rows, columns = np.mgrid[0:shape[0], 0:shape[1]]
    radius = np.hypot(rows - 60, columns - 100)
    return (radius > 24) & (radius < 30)


def test_a_desk_reaching_in_from_the_edge_is_left_out():
    ink = _stroke_digit()
    ink[96:, :] = True  # A dark desk along the bottom: ten times the digit's "ink".
    assert np.array_equal(digit_ink(ink), _stroke_digit())


def test_a_finger_near_the_digit_is_left_out():
    ink = _stroke_digit()
    ink[106:, 90:130] = True  # 16 px below the 60 px digit (a quarter of its size: NEAR).
    assert np.array_equal(digit_ink(ink), _stroke_digit())


def test_a_part_of_the_digit_at_the_edge_joins_it_when_all_but_touching():
    # A 5 whose bar runs off the right edge, 2 pixels above its body (MNIST's
    # test digit 1911 is one).
    ink = _stroke_digit()
    ink[26:30, 131:] = True
    assert np.array_equal(digit_ink(ink), ink)


def test_a_digit_at_the_edge_is_not_traded_for_a_speck_clear_of_it():
    ink = np.zeros((150, 200), bool)
    ink[:, 95:105] = True  # A tightly cropped 1 touches top and bottom.
    ink[70:77, 20:27] = True  # A blot clear of the edges, with 3% as much ink.
    kept = digit_ink(ink)
    assert kept[:, 95:105].all() and not kept[70:77, 20:27].any()
