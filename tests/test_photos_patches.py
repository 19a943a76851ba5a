"""Which ink is the digit: specks and patches near it, desks and fingers at the edge."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.photos.patches import NEAR, PART_NEAR, digit_ink


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


def test_a_digit_running_off_the_edge_is_not_traded_for_a_mark_clear_of_it():
    ink = np.zeros((150, 200), bool)
    ink[60:, 95:105] = True  # A stroke running off the bottom edge,
    ink[60:64, 60:140] = True  # with a bar: crossing the edge, not lying along it.
    ink[5:8, 5:45] = True  # A dash elsewhere, with a tenth as much ink.
    kept = digit_ink(ink)
    assert kept[60:, 95:105].all() and not kept[5:8, 5:45].any()
