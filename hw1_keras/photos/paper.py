"""Telling a digit's ink from its paper in a photo, in even light or not.

A scan or a drawing has evenly lit paper, and its border is that paper. A
phone photo rarely does: the light falls off towards a window, the corners
are darker than the middle, a hand casts a shadow. Taken as one grey, such
paper is partly "ink", and the crop around the ink takes in half the page.
Here the paper's level is found around each pixel where it varies; which
ink is the digit is `patches`' work, and `images.to_mnist` does the rest of
MNIST's preparation.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from hw1_keras.photos.masks import WORK_SIZE

INK_THRESHOLD = 0.2  # A pixel is ink above this fraction of the image's contrast.
UNEVEN = 0.1  # The paper's level varies by more than this share of the
# ink's contrast: the light is uneven.
LIGHT_WINDOW = 0.25  # The paper's level is read over windows this share of the
# image's longer side: wider than a digit's strokes, narrower than a shadow.
STRONG_INK = 0.5  # Stroke widths are measured on what is this dark a share of the contrast...
STROKES_PER_WINDOW = 3  # ...and windows are at least this many strokes wide.
LIGHT_BLOCKS = 4  # Blocks a side whose paper and ink levels are read, to tell uneven light...
CLEAR_OF_INK = 0.04  # ...from pixels this share of the image clear of the other (the soft
# edges of a photographed stroke are narrower, those of an enlarged MNIST digit about as wide)...
CLEAR_SHARE = 0.05  # ...in blocks with at least this share of such pixels.
INK_VARIES = 0.3  # Clear ink this share of the contrast fainter than the darkest is still ink.
NOISE_MARGIN = 3.0  # Standard deviations of the camera's noise that are still paper.


def ink_strength(grey: np.ndarray) -> np.ndarray:
    """How much each pixel departs from the paper towards the ink: 0 for paper.

    The ink is what departs furthest from the paper (taken from the image's
    border): darker, as a pen on paper, or lighter, as chalk or MNIST itself.
    Where the paper is unevenly lit (`_unevenly_lit`), its level is
    estimated around each pixel instead, and for dark ink the strength is
    divided by the local light, so a stroke in shadow counts as much as one
    in full light.

    Args:
        grey: float grey levels 0 (black) to 255 (white), shape (H, W).

    Returns:
        Float array of the same shape, >= 0, larger where there is more ink.
    """
    background = float(np.median(border_pixels(grey)))
    dark_ink = background - grey.min() > grey.max() - background
    # Bright ink on dark paper, as MNIST is.
    lifted = background - grey if dark_ink else grey - background
    if not _unevenly_lit(lifted):
        return np.clip(lifted, 0, None)
    # The paper's level is read over windows wider than the strokes, which in
    # a tightly cropped marker digit can be a third of the image wide: where
    # the first reading shows strokes too wide for its windows, read again.
    window = LIGHT_WINDOW * max(grey.shape)
    strength = _evened(grey, dark_ink, window)
    small = shrink(strength)
    strokes = stroke_width(small, STRONG_INK) * max(grey.shape) / max(small.shape)
    if STROKES_PER_WINDOW * strokes > window:
        strength = _evened(grey, dark_ink, STROKES_PER_WINDOW * strokes)
    return strength


def _unevenly_lit(lifted: np.ndarray) -> bool:
    """Whether the paper's level varies across an image of bright ink on dark paper.

    The image is split at Otsu's threshold, and each side's level is read in
    LIGHT_BLOCKS x LIGHT_BLOCKS blocks, from pixels at least `CLEAR_OF_INK`
    of the image clear of the other side. In even light every such level is
    the paper's or the ink's; a level well between the two is paper in
    shadow, on either side of the threshold. Only clear pixels count because
    the soft edges of strokes also lie between paper and ink, and in a
    tightly cropped marker digit they fill whole blocks. (The border alone
    cannot tell either: where the digit touches it, ink and the soft edges
    of strokes lie there.)
    """
    small = shrink(lifted)
    half = max(1, round(CLEAR_OF_INK * max(small.shape)))
    paper = small < otsu(small)
    papers, inks = (_clear_levels(small, side, half) for side in (paper, ~paper))
    if not papers and not inks:
        return False
    lowest = min(papers + inks)
    contrast = float(np.percentile(small, 99.5)) - lowest
    # In even light the clear paper is all at one level. Clear ink may be
    # fainter in places (a pen's pressure varies), but not as faint as shaded paper.
    return (any(level > lowest + UNEVEN * contrast for level in papers)
            or any(level < lowest + (1 - INK_VARIES) * contrast for level in inks))


def _clear_levels(image: np.ndarray, side: np.ndarray, half: int) -> list[float]:
    """Median grey of `side`'s pixels `half` clear of the rest, per block with enough of them."""
    clear = window_reduce(np.pad(side.astype(np.float32), half, mode="edge"), np.min, half) > 0
    rows = np.array_split(np.arange(image.shape[0]), min(LIGHT_BLOCKS, image.shape[0]))
    columns = np.array_split(np.arange(image.shape[1]), min(LIGHT_BLOCKS, image.shape[1]))
    levels = []
    for r in rows:
        for c in columns:
            block = np.s_[r[0]:r[-1] + 1, c[0]:c[-1] + 1]
            if clear[block].mean() >= CLEAR_SHARE:
                levels.append(float(np.median(image[block][clear[block]])))
    return levels


def otsu(image: np.ndarray) -> float:
    """The grey that best splits an image in two (Otsu 1979: most variance between)."""
    counts, edges = np.histogram(image, 64)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    sums = np.cumsum(counts * centres)
    mean_below = sums / np.maximum(below, 1)
    mean_above = (sums[-1] - sums) / np.maximum(above, 1)
    return float(edges[1:][np.argmax(below * above * (mean_below - mean_above) ** 2)])


def _evened(grey: np.ndarray, dark_ink: bool, window: float) -> np.ndarray:
    """Ink strength with the paper's level estimated over `window`-pixel squares."""
    bright = 255.0 - grey if dark_ink else grey
    paper = _paper_level(bright, window)
    # The opening sits in the noise's troughs; noise above it is not ink either.
    strength = np.clip(bright - paper - NOISE_MARGIN * _noise(grey), 0, None)
    if dark_ink:  # Light multiplies paper and ink alike: divide it out.
        strength *= 255.0 / np.maximum(255.0 - paper, 0.1 * 255.0)
    return strength


def _noise(grey: np.ndarray) -> float:
    """The camera noise's standard deviation, from neighbouring pixels on the border.

    Neighbours differ by noise (times the square root of 2) and, rarely, by an
    edge; the median absolute difference ignores the edges.
    """
    lines = [side for side in sides(grey) if side.size > 1]
    if not lines:
        return 0.0
    steps = np.abs(np.concatenate([np.diff(side) for side in lines]))
    return float(1.4826 * np.median(steps) / np.sqrt(2.0))


def stroke_width(digit: np.ndarray, threshold: float = INK_THRESHOLD) -> float:
    """A digit's stroke width in its own pixels: 2 x ink area / edge pixels.

    A stroke of width w and length L has area wL and about 2L edge pixels
    (ink pixels with a paper pixel beside them); one-pixel lines read as 2.
    Ink is what exceeds `threshold` times the image's largest value.
    """
    ink = digit > threshold * digit.max()
    padded = np.pad(ink, 1)
    inner = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
             & padded[1:-1, :-2] & padded[1:-1, 2:])
    edge = np.count_nonzero(ink & ~inner)
    return 2.0 * np.count_nonzero(ink) / max(edge, 1)


def sides(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """The image's top, bottom, left and right rows of pixels."""
    return image[0], image[-1], image[:, 0], image[:, -1]


def border_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels of the image's four `sides` in one flat array (corners twice)."""
    return np.concatenate(sides(image))


def _paper_level(grey: np.ndarray, window: float) -> np.ndarray:
    """The paper's grey around each pixel of bright ink on dark paper.

    A grey-level opening (minimum, then maximum, over `window`-pixel squares,
    wider than the strokes) removes the strokes and keeps the slowly varying
    paper.
    """
    small = shrink(grey)
    half = max(1, round(window * max(small.shape) / max(grey.shape) / 2))
    # Beyond the edges the paper goes on as it was going (an odd reflection):
    # else an opening flattens a vignette's dark corners and leaves them as ink.
    padded = np.pad(small, 2 * half, mode="reflect", reflect_type="odd")
    level = window_reduce(window_reduce(padded, np.min, half), np.max, half)
    return np.asarray(Image.fromarray(level.astype(np.float32), mode="F")
                      .resize(grey.shape[::-1], Image.Resampling.BILINEAR))


def window_reduce(image: np.ndarray, reduce, half: int) -> np.ndarray:
    """`reduce` (min or max) over each (2 half + 1)-square window that fits.

    A square's minimum is its rows' minimum of its columns' minima, so two
    1-D passes do it; the result is `half` pixels smaller on each side.
    """
    size = 2 * half + 1
    rows = reduce(np.lib.stride_tricks.sliding_window_view(image, size, axis=0), axis=-1)
    return reduce(np.lib.stride_tricks.sliding_window_view(rows, size, axis=1), axis=-1)


def shrink(image: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """The image averaged down to `size` pixels on its longer side (if larger).

    Averaging keeps each stroke's ink, however thin the stroke.
    """
    scale = size / max(image.shape)
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F")
                      .resize(size, Image.Resampling.BOX))
