"""Masks of ink: pooled to a working size, numbered as connected patches."""

from __future__ import annotations

import numpy as np

from hw1_keras.photos.masks import label, pooled


def test_patches_are_8_connected():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # Touching at corners: one patch.
    mask[5, 5] = True
    labels = label(mask)
    assert labels[0, 0] == labels[1, 1] == labels[2, 2] != labels[5, 5]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert set(np.unique(label(np.ones((4, 4), bool)))) == {1}  # All ink: one patch.


def test_a_pooled_one_pixel_line_stays_whole_and_keeps_its_count():
    mask = np.zeros((300, 1000), bool)
    mask[150, :] = True  # 1 pixel of 1000 rows' worth: a plain mean would lose it.
    count, factor = pooled(mask, size=128)
    assert factor == 8 and count.shape == (38, 125)
    assert (count[150 // 8] == 8).all() and count.sum() == 1000
