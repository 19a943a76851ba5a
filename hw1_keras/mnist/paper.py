"""Telling a digit's ink from its paper in a photo: uneven light and stray specks.

A scan or a drawing has evenly lit paper, and its border is that paper. A
phone photo rarely does: the light falls off towards a window, the corners
are darker than the middle, a hand casts a shadow. Taken as one grey, such
paper is partly "ink", and the crop around the ink takes in half the page.
A speck of dust in a corner does the same on evenly lit paper. Both are
handled here; `images.to_mnist` does the rest of MNIST's preparation.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

UNEVEN = 0.1  # Border greys spread over more than this share of the ink's contrast.
LIGHT_WINDOW = 0.25  # The paper's level is read over windows this share of the
# image's shorter side: wider than a digit's strokes, narrower than a shadow.
WORK_SIZE = 128  # Light and specks are worked out on the image shrunk to this.
# Ink near the digit (a share of its size) is part of it: any ink this near...
NEAR = 0.25
# ...and patches holding this share of the digit's ink this near (a 5's bar).
PART, PART_NEAR = 0.05, 0.5


def ink_strength(grey: np.ndarray) -> np.ndarray:
    """How much each pixel departs from the paper towards the ink: 0 for paper.

    The ink is what departs furthest from the paper (taken from the image's
    border): darker, as a pen on paper, or lighter, as chalk or MNIST itself.
    Where the border shows the paper unevenly lit, the paper's level is
    estimated around each pixel instead, and for dark ink the strength is
    divided by the local light, so a stroke in shadow counts as much as one in
    full light.

    Args:
        grey: float grey levels 0 (black) to 255 (white), shape (H, W).

    Returns:
        Float array of the same shape, >= 0, larger where there is more ink.
    """
    border = _border(grey)
    background = float(np.median(border))
    dark_ink = background - grey.min() > grey.max() - background
    if dark_ink:  # Work with bright ink on dark paper, as MNIST is.
        grey, border, background = 255.0 - grey, 255.0 - border, 255.0 - background
    lifted = grey - background
    contrast = lifted.max()
    spread = np.percentile(border, 75) - np.percentile(border, 10)
    if spread <= UNEVEN * contrast:
        return np.clip(lifted, 0, None)
    paper = _paper_level(grey)
    strength = np.clip(grey - paper, 0, None)
    if dark_ink:  # Light multiplies paper and ink alike: divide it out.
        strength *= 255.0 / np.maximum(255.0 - paper, 0.1 * 255.0)
    return strength


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])


def _paper_level(grey: np.ndarray) -> np.ndarray:
    """The paper's grey around each pixel of bright ink on dark paper.

    A grey-level opening (minimum, then maximum, over a window wider than the
    strokes) removes the strokes and keeps the slowly varying paper.
    """
    small = _shrink(grey, Image.Resampling.BOX)
    half = max(1, round(LIGHT_WINDOW * min(small.shape) / 2))
    # Beyond the edges the paper goes on as it was going (an odd reflection):
    # else an opening flattens a vignette's dark corners and leaves them as ink.
    padded = np.pad(small, 2 * half, mode="reflect", reflect_type="odd")
    level = _window(_window(padded, np.min, half), np.max, half)
    return np.asarray(Image.fromarray(level.astype(np.float32), mode="F")
                      .resize(grey.shape[::-1], Image.Resampling.BILINEAR))


def _window(image: np.ndarray, reduce, half: int) -> np.ndarray:
    """`reduce` (min or max) over each (2 half + 1)-square window that fits.

    A square's minimum is its rows' minimum of its columns' minima, so two
    1-D passes do it; the result is `half` pixels smaller on each side.
    """
    size = 2 * half + 1
    rows = reduce(np.lib.stride_tricks.sliding_window_view(image, size, axis=0), axis=-1)
    return reduce(np.lib.stride_tricks.sliding_window_view(rows, size, axis=1), axis=-1)


def _shrink(image: np.ndarray, resampling: Image.Resampling) -> np.ndarray:
    scale = WORK_SIZE / max(image.shape)
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(size, resampling))


def digit_ink(ink: np.ndarray) -> np.ndarray:
    """The ink mask without the specks away from the digit.

    The digit is the connected patch of ink with the most ink, and every patch
    near it (a 5's detached bar, a stroke broken by a faint pen); a patch
    further than `NEAR` times the digit's size from all of those is a speck,
    a smudge or the edge of something else in the photo.

    Args:
        ink: boolean mask, shape (H, W), with at least one pixel set.
    """
    factor = math.ceil(max(ink.shape) / WORK_SIZE)
    height, width = -(-ink.shape[0] // factor), -(-ink.shape[1] // factor)
    padded = np.zeros((height * factor, width * factor), bool)
    padded[:ink.shape[0], :ink.shape[1]] = ink
    # Pooling by "any" keeps a pen line connected however much it is shrunk.
    count = padded.reshape(height, factor, width, factor).sum(axis=(1, 3))
    labels = _label(count > 0)
    mass = np.bincount(labels.ravel(), weights=count.ravel())
    mass[0] = 0
    keep = {int(mass.argmax())}
    boxes = {label: _box(labels == label) for label in range(1, len(mass)) if mass[label]}
    grown = True
    while grown:  # Take in the patches near what is kept, until none is.
        top, left, bottom, right = _union(boxes[label] for label in keep)
        size = max(bottom - top, right - left) + 1
        kept_mass = sum(mass[label] for label in keep)

        def near(label: int) -> bool:
            t, l, b, r = boxes[label]
            gap = max(top - b, t - bottom, left - r, l - right, 0)
            share = NEAR if mass[label] < PART * kept_mass else PART_NEAR
            return gap <= share * size

        joining = {label for label in boxes if label not in keep and near(label)}
        grown = bool(joining)
        keep |= joining
    kept = np.isin(labels, sorted(keep))
    kept = np.repeat(np.repeat(kept, factor, axis=0), factor, axis=1)
    return ink & kept[:ink.shape[0], :ink.shape[1]]


def _label(mask: np.ndarray) -> np.ndarray:
    """Numbers each 8-connected patch of a small mask (0: not in the mask).

    Each pass hands every pixel the largest number among its neighbours, until
    a patch shares one number; a few hundred passes at most on WORK_SIZE.
    """
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        padded = np.pad(labels, 1)
        rows, columns = mask.shape
        neighbours = np.max([padded[dy:dy + rows, dx:dx + columns]
                             for dy in range(3) for dx in range(3)], axis=0)
        spread = np.where(mask, neighbours, 0)
        if np.array_equal(spread, labels):
            break
        labels = spread
    # Renumbered 1, 2, ... with 0 kept for "not in the mask", even if all is.
    _, compact = np.unique(np.append(0, labels), return_inverse=True)
    return compact[1:].reshape(mask.shape)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], columns[0], rows[-1], columns[-1]


def _union(boxes) -> tuple[int, int, int, int]:
    tops, lefts, bottoms, rights = zip(*boxes)
    return min(tops), min(lefts), max(bottoms), max(rights)
