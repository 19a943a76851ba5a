"""Masks of ink worked on as connected patches, at a size that keeps them cheap.

`paper`, `patches` and `rules` each look at a photo's ink as a mask: shrunk
to at most `WORK_SIZE` cells a side, split into connected patches.
"""

from __future__ import annotations

import math

import numpy as np

WORK_SIZE = 128  # Light and patches of ink are worked out on the image shrunk to this.


def pooled(mask: np.ndarray, size: int = WORK_SIZE) -> tuple[np.ndarray, int]:
    """A mask's set pixels counted in factor x factor cells, at most `size` cells a side.

    A cell with any set pixel counts, so a pen line stays connected (and a
    printed line straight) however much the mask is shrunk.

    Returns:
        The counts, and the factor (whole pixels per cell).
    """
    factor = math.ceil(max(mask.shape) / size)
    height, width = -(-mask.shape[0] // factor), -(-mask.shape[1] // factor)
    padded = np.zeros((height * factor, width * factor), bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    return padded.reshape(height, factor, width, factor).sum(axis=(1, 3)), factor


def label(mask: np.ndarray) -> np.ndarray:
    """Numbers each 8-connected patch of a mask 1, 2, ... (0: not in the mask).

    Row by row, each run of set pixels joins the runs of the row above that it
    touches, corners included (union-find over runs): one pass, however the
    patches wind.
    """
    parent: list[int] = []

    def root(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    runs, above = [], []  # (row, start, end) of every run; the previous row's (start, end, id).
    for row, pixels in enumerate(mask):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], pixels.astype(np.int8), [0]))))
        current = []
        for start, end in zip(edges[::2], edges[1::2]):  # Each run is [start, end).
            run = len(parent)
            parent.append(run)
            for above_start, above_end, above_run in above:
                if above_start <= end and above_end >= start:  # Touching, corners too.
                    parent[root(above_run)] = root(run)
            current.append((start, end, run))
            runs.append((row, start, end))
        above = current
    labels = np.zeros(mask.shape, np.int64)
    numbers: dict[int, int] = {}
    for run, (row, start, end) in enumerate(runs):
        labels[row, start:end] = numbers.setdefault(root(run), len(numbers) + 1)
    return labels


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The smallest box around a mask's set pixels: `(top, left, bottom, right)`, inclusive.

    The mask must have at least one pixel set.
    """
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], columns[0], rows[-1], columns[-1]


def union(boxes) -> tuple[int, int, int, int]:
    """The smallest box around `boxes`, each `(top, left, bottom, right)` as `box` gives."""
    tops, lefts, bottoms, rights = zip(*boxes)
    return min(tops), min(lefts), max(bottoms), max(rights)
