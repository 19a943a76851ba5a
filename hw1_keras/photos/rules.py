"""Ruled and squared paper: printed lines across the page are not the digit.

A digit written in an exercise book sits on (or between) lines printed
across the whole page. Dark enough to count as ink, they join the digit's
ink, and the crop around it takes in the page's width. Here they are found
as ink that lies along straight, thin bands across most of the image, each
at its own tilt (a page photographed at an angle fans its lines out), and
erased, except where a stroke crosses them.
"""

from __future__ import annotations

import math

import numpy as np

from hw1_keras.photos.masks import pooled

SPAN = 0.9  # A printed line is ink along this share of the image's width (it crosses the page)...
THICKNESS = 0.012  # ...in a band at most this share of the image's height...
LINES = 2  # ...and a page shows at least this many one way (one could be a digit's bar).
MAX_TILT = 6.0  # Degrees a line may be turned in the photo.
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
    # A faint printed line clears the threshold only in places: found whole
    # at a lower one, it is erased whole.
    ink = strength > FAINT * threshold
    across, down = _lines(ink), _lines(ink.T)
    # A notebook's margin is one line down a ruled page: a single line counts
    # where two or more run the other way.
    if len(across) < LINES and len(down) < LINES:
        return strength
    erased = _erase(strength, ink, across)
    # Down the page, the lines across are no longer there to be taken for strokes.
    erased = _erase(erased.T, erased.T > FAINT * threshold, down).T
    # Nor, now, the lines down: what the lines across left where they met them goes.
    return _erase(erased, erased > FAINT * threshold, across)


def _lines(ink: np.ndarray) -> list[tuple[np.ndarray, int, float]]:
    """The printed lines across the image: per line, a window of rows around it.

    Each window is (its top row in each column, its height, the line's
    thickness): the line's pooled rows (one more below, see `_find_lines`)
    and a pooled row and a pixel more on each side; the thickness is its
    ink per column, in the columns where nothing crosses it (the median).
    """
    count, factor = pooled(ink, WORK_SIZE)
    columns = np.arange(ink.shape[1]) // factor - count.shape[1] / 2
    margin = factor + 1
    lines = []
    for tilt, first, last in _find_lines(count):
        line = ((first + np.round(math.tan(tilt) * columns).astype(int)) * factor - margin,
                (last - first + 2) * factor + 2 * margin)
        _, _, thickness, crossed = _window_ink(ink, line)
        alone = thickness[~crossed & (thickness > 0)]
        if alone.size:
            lines.append((*line, float(np.median(alone))))
    return lines


def _window_ink(ink: np.ndarray, line: tuple):
    """A line's window: its rows per column (clipped to the image), which are inside the
    image, and per column its ink and whether ink reaches the window's edge."""
    top, size = line[:2]
    rows = top + np.arange(size)[:, np.newaxis]
    inside = (rows >= 0) & (rows < ink.shape[0])
    rows = rows.clip(0, ink.shape[0] - 1)
    window = ink[rows, np.arange(ink.shape[1])] & inside
    return rows, inside, window.sum(axis=0), window[0] | window[-1]


def _erase(strength: np.ndarray, ink: np.ndarray, lines: list) -> np.ndarray:
    """`strength` with each line's window cleared in the columns where only the line is ink.

    Ink at the window's edge is a stroke crossing the line, or standing on
    it (or a line running the other way); more ink than the line has is a
    stroke ending there.
    """
    erased = strength.copy()
    column = np.arange(strength.shape[1])
    for line in lines:
        rows, inside, thickness, crossed = _window_ink(ink, line)
        cleared = inside & ~crossed & (thickness > 0) & (thickness <= line[2] + 1)
        erased[rows[cleared], np.broadcast_to(column, rows.shape)[cleared]] = 0.0
    return erased


def _find_lines(count: np.ndarray) -> list[tuple[float, int, int]]:
    """Thin full lines: each one's tilt (radians) and pooled rows (first, last) mid-image.

    Every tilt a pooled pixel apart at the far edge is tried, and each line
    is taken at the tilt that lines up the most of its ink: on a page
    photographed at a slight angle the lines fan out.
    """
    # Each cell also counts for the row above: a line that the rounding of a
    # tilt steps between two rows is whole in the upper one.
    ink = count > 0
    ink[:-1] |= ink[1:]
    rows, columns = np.nonzero(ink)
    height, width = ink.shape
    if width < 2:
        return []
    step = math.atan(1.0 / width)
    size = height + 2 * width
    candidates = []
    for tilt in np.arange(-math.radians(MAX_TILT), math.radians(MAX_TILT) + step / 2, step):
        shift = np.round(math.tan(tilt) * (np.arange(width) - width / 2)).astype(int) - width
        along = np.bincount(rows - shift[columns], minlength=size)
        # A line near the top or bottom edge may leave the image: its span is
        # the columns where its offset is inside (rows 0 to height - 1 there),
        # a quarter of the width at least.
        inside = np.cumsum(np.bincount(-shift, minlength=size + 1)
                           - np.bincount(height - shift, minlength=size + 1))[:size]
        full = np.flatnonzero((along >= SPAN * inside) & (inside >= width / 4))
        candidates += [(along[first:last + 1].sum(), float(tilt), first - width, last - width)
                       for first, last in _runs(full)
                       if last - first + 1 <= THICKNESS * height + 2]
    lines: list[tuple[float, int, int]] = []
    for _, tilt, first, last in sorted(candidates, reverse=True):
        if not any(_meet(width, (tilt, first, last), line) for line in lines):
            lines.append((tilt, first, last))
    return lines


def _meet(width: int, line: tuple[float, int, int], other: tuple[float, int, int]) -> bool:
    """Whether two lines (tilt, first, last) cross or come within a line's width in the image."""
    def ends(tilt, first, last):
        middle = (first + last) / 2
        return np.array([middle - math.tan(tilt) * width / 2, middle + math.tan(tilt) * width / 2])

    apart = ends(*line) - ends(*other)
    close = max(line[2] - line[1], other[2] - other[1]) + 2
    return bool(apart[0] * apart[1] <= 0 or np.abs(apart).min() < close)


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs in sorted indices, as (first, last)."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [indices.size - 1]))
    return [(int(indices[s]), int(indices[e])) for s, e in zip(starts, ends)]
