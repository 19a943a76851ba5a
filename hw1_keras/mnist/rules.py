"""Ruled and squared paper: printed lines across the page are not the digit.

A digit written in an exercise book sits on (or between) lines printed
across the whole page. Dark enough to count as ink, they join the digit's
ink, and the crop around it takes in the page's width. Here they are found
as ink that lies along straight, thin bands across most of the image, at
the page's tilt in the photo, and erased, except where a stroke crosses
them.
"""

from __future__ import annotations

import math

import numpy as np

from hw1_keras.mnist.patches import pooled

SPAN = 0.9  # A printed line is ink along this share of the image's width (it crosses the page)...
THICKNESS = 0.012  # ...in a band at most this share of the image's height...
LINES = 2  # ...and a page shows at least this many (one could be a digit's bar).
MAX_TILT = 6.0  # Degrees a page may be turned in the photo.
FAINT = 0.5  # Lines are found in what is this share of the ink threshold.
WORK_SIZE = 256  # Lines are found on the ink shrunk to this, keeping every line.


def without_rules(strength: np.ndarray, threshold: float) -> np.ndarray:
    """The ink strength with printed lines across the page, and down it, erased.

    Args:
        strength: ink strength, 0 for paper (`paper.ink_strength`), shape (H, W).
        threshold: the strength above which a pixel is ink.

    Returns:
        A copy of `strength` with the lines' pixels set to 0, except where a
        stroke of the digit crosses a line: there the line is part of it.
    """
    across = _without_lines(strength, threshold)
    return _without_lines(across.T, threshold).T


def _without_lines(strength: np.ndarray, threshold: float) -> np.ndarray:
    """Erases lines running across the image (left to right, within MAX_TILT)."""
    # A faint printed line clears the threshold only in places: found whole
    # at a lower one, it is erased whole.
    ink = strength > FAINT * threshold
    count, factor = pooled(ink, WORK_SIZE)
    height, width = count.shape
    tilt, lines = _find_lines(count)
    if len(lines) < LINES:
        return strength
    erased = strength.copy()
    column = np.arange(strength.shape[1])
    shift = np.round(math.tan(tilt) * (column // factor - width / 2)).astype(int)
    for first, last in lines:
        # Per column, the line's pooled rows (one more below, see _find_lines)
        # and one more on each side, at full size.
        top = (first - 1 + shift) * factor - 1
        rows = top + np.arange((last - first + 4) * factor + 2)[:, np.newaxis]
        inside = (rows >= 0) & (rows < strength.shape[0])
        rows = rows.clip(0, strength.shape[0] - 1)
        window = ink[rows, column] & inside
        # Ink at the window's edge is a stroke crossing the line, or standing
        # on it; more ink than the line has in most columns is a stroke's end.
        thickness = window.sum(axis=0)
        clear = ~(window[0] | window[-1]) & (thickness > 0)
        if not clear.any():
            continue
        clear &= thickness <= np.median(thickness[clear]) + 1
        erased[rows[:, clear], column[clear]] = np.where(
            inside[:, clear], 0.0, erased[rows[:, clear], column[clear]])
    return erased


def _find_lines(count: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """The tilt (radians) and pooled rows (first, last, at the middle column) of thin full lines.

    Every tilt a pooled pixel apart at the far edge is tried; the one that
    lines up the most ink in thin bands wins.
    """
    # Each cell also counts for the row above: a line that the rounding of a
    # tilt steps between two rows is whole in the upper one.
    ink = count > 0
    ink[:-1] |= ink[1:]
    rows, columns = np.nonzero(ink)
    height, width = ink.shape
    best, found = (0.0, []), 0
    if width < 2:
        return best
    step = math.atan(1.0 / width)
    size = height + 2 * width
    for tilt in np.arange(-math.radians(MAX_TILT), math.radians(MAX_TILT) + step / 2, step):
        shift = np.round(math.tan(tilt) * (np.arange(width) - width / 2)).astype(int) - width
        along = np.bincount(rows - shift[columns], minlength=size)
        # A line near the top or bottom edge may leave the image: its span is
        # the columns where its offset is inside (rows 0 to height - 1 there),
        # a quarter of the width at least.
        inside = np.cumsum(np.bincount(-shift, minlength=size + 1)
                           - np.bincount(height - shift, minlength=size + 1))[:size]
        full = np.flatnonzero((along >= SPAN * inside) & (inside >= width / 4))
        lines = [(first, last) for first, last in _runs(full)
                 if last - first + 1 <= THICKNESS * height + 2]
        lined_up = sum(along[first:last + 1].sum() for first, last in lines)
        if lined_up > found:
            best, found = (float(tilt), [(f - width, l - width) for f, l in lines]), lined_up
    return best


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs in sorted indices, as (first, last)."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [indices.size - 1]))
    return [(int(indices[s]), int(indices[e])) for s, e in zip(starts, ends)]
