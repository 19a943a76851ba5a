"""A desk around the page: painted over before the ink is told from the paper.

A photo of a sheet's corner, or of a note lying on a desk, shows the desk
along two sides or more. Its border, which `paper` takes for the paper, is
then mostly desk, and the desk would be read as paper and the sheet as ink.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from hw1_keras.photos.masks import box, label
from hw1_keras.photos.paper import border_pixels, otsu, shrink, sides, stroke_width, window_reduce

# Most of the border, darker than the page, is a desk if, all of:
BETWEEN_SURFACES = 0.015  # at most this share of the border lies between the two levels
# (in the middle third); a soft shadow's edge or light falling across a page leaves more;
HOLDS_INK = 0.001  # pen strokes cover this share of the image on the page, clear of its edges,
NARROW = 0.4  # at most this share of their length wide (`_stroke`; a bold 0's hole is wider);
BARE = 0.005  # at most this share of the desk is darker than its level by more than
DESK_SPREAD = 3.0  # this many standard deviations and a tenth of the contrast (ink in a shadow);
# and, where the page reaches the image's edges:
ALONG_SIDES = 0.9  # the desk covers this share of a whole side at least, and meets the page in a
STRAIGHT = 0.01  # line straight to this share of the image; or, where the page lies inside:
WIDE = 0.4  # a square this share of the shorter side across is
MOSTLY = 0.8  # this share page,
RECTANGLE = 0.9  # the page fills this share of a rectangle around it, and its strokes are
NARROW_INSIDE = 0.25  # at most this share of their length wide (a bold 0's slit of a hole is not).


def without_desk(grey: np.ndarray) -> np.ndarray:
    """The image with a desk around the page painted over in the paper's grey.

    The paper is what most of the border shows, unless the photo shows a
    desk along two sides or more: a sheet's corner, or a note lying on the
    desk. Then most of the border is darker than the image's lighter
    surface, with next to nothing between their levels (light falling
    across the paper, or a soft shadow, leaves a continuum instead). The
    lighter surface is a page, not a bold light stroke, if pen strokes lie
    on it clear of the image's edges (`_stroke`) and either it reaches the
    edges and the darker surface meets it in straight lines (`_desk_edges`;
    a stroke's edges are curved) or it lies inside the image, wide (`_wide`)
    and rectangular (`_rectangle_share`). A desk is bare: paper in a sharp shadow
    holds strokes and is left to `paper` to even out.
    """
    border = border_pixels(grey)
    small = shrink(grey)
    split = otsu(small)
    if np.median(border) >= split:
        return grey
    page = small >= split
    labels = label(~page)
    desk = np.isin(labels, np.unique(np.concatenate(sides(labels)))) & ~page
    stroke = _stroke(~page & ~desk)
    if stroke is None or stroke[0] > NARROW * stroke[1]:
        return grey
    dark, paper = float(np.median(border[border < split])), float(np.median(small[page]))
    between = np.abs(border - (dark + paper) / 2) < (paper - dark) / 6
    if np.count_nonzero(between) > BETWEEN_SURFACES * border.size:
        return grey
    if np.concatenate(sides(page)).any():  # The page reaches the image's edges.
        if not _desk_edges(desk):
            return grey
    elif (not _wide(page) or _rectangle_share(~desk) < RECTANGLE  # A note on the desk,
          or stroke[0] > NARROW_INSIDE * stroke[1]):  # or a bold light digit?
        return grey
    level = np.median(small[desk])  # A bare desk, not paper in a shadow holding strokes.
    spread = 1.4826 * np.median(np.abs(small[desk] - level))
    if np.mean(small[desk] < level - DESK_SPREAD * spread - 0.1 * (paper - dark)) > BARE:
        return grey
    # A pixel more, for the soft edge between desk and page.
    desk = window_reduce(np.pad(desk.astype(np.float32), 1), np.max, 1) > 0
    desk = np.asarray(Image.fromarray(desk.astype(np.uint8)).resize(grey.shape[::-1],
                                                                    Image.Resampling.NEAREST))
    return np.where(desk > 0, paper, grey).astype(grey.dtype, copy=False)


def _rectangle_share(mask: np.ndarray) -> float:
    """The share of the smallest rectangle around it, at any angle, that a mask fills.

    About 1 for a page, however turned; pi/4 for an ellipse (a bold 0), less
    for other digits. The smallest rectangle has a side along an edge of the
    mask's convex hull (Freeman and Shapira 1975), so each edge is tried.
    """
    inner = window_reduce(np.pad(mask, 1), np.min, 1)
    rows, columns = np.nonzero(mask & ~inner)  # The hull's corners are its edge pixels'.
    if rows.size == 0:
        return 0.0
    points = sorted(set(zip(np.concatenate([rows, rows, rows + 1, rows + 1]).tolist(),
                            np.concatenate([columns, columns + 1, columns, columns + 1]).tolist())))
    hull = np.array(_half_hull(points) + _half_hull(points[::-1]), dtype=np.float64)
    edges = np.roll(hull, -1, axis=0) - hull
    along = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    spans = [np.ptp(hull @ direction.T, axis=0) for direction in (along, across)]
    return np.count_nonzero(mask) / float((spans[0] * spans[1]).min())


def _half_hull(points: list) -> list:
    """Andrew's monotone chain over sorted points: the hull's side from the first to the last."""
    hull: list = []
    for point in points:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) <= 0:
            hull.pop()
        hull.append(point)
    return hull[:-1]


def _cross(origin, a, b) -> float:
    return (a[0] - origin[0]) * (b[1] - origin[1]) - (a[1] - origin[1]) * (b[0] - origin[0])


def _stroke(ink: np.ndarray) -> tuple[float, int] | None:
    """The width and length of a mask's largest patch, if it holds `HOLDS_INK` of the image.

    Pen strokes are narrow for their length; a bold 0's hole is not. The
    width is `stroke_width`, the length the patch's longer side.
    """
    patches = label(ink)
    sizes = np.bincount(patches.ravel())[1:]
    if sizes.size == 0 or sizes.max() < HOLDS_INK * ink.size:
        return None
    patch = patches == 1 + int(sizes.argmax())
    top, left, bottom, right = box(patch)
    patch = patch[top:bottom + 1, left:right + 1]
    return stroke_width(patch.astype(np.float32)), max(patch.shape)


def _wide(mask: np.ndarray) -> bool:
    """Whether some square `WIDE` of the image's shorter side across is mostly in a mask.

    Mostly (`MOSTLY`), since the page's square holds the digit's strokes.
    """
    size = round(WIDE * min(mask.shape))
    if size < 1:
        return False
    total = np.pad(mask.astype(np.float64), ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
    share = (total[size:, size:] - total[:-size, size:] - total[size:, :-size]
             + total[:-size, :-size]) / size ** 2
    return bool(share.max() >= MOSTLY)


def _desk_edges(desk: np.ndarray) -> bool:
    """Whether a mask looks like a desk around a page: along whole sides, with a straight edge.

    A desk lies along at least one whole side of the photo, and where it
    meets the page, its edge is straight (tilted, perhaps), across the middle
    half of every such side. A stroke that runs off the image has a curved
    edge or leaves a gap in the side.
    """
    found = False
    for side in (desk, desk[::-1], desk.T, desk.T[::-1]):  # Rows from each side inward.
        if side[0].mean() < ALONG_SIDES:
            continue
        found = True
        length = side.shape[1]
        middle = side[:, length // 4:length - length // 4]
        position = np.flatnonzero(~middle.all(axis=0))  # Where the page shows.
        if position.size < max(8, 0.25 * middle.shape[1]):  # Too little to see a line.
            return False
        depth = np.argmin(middle[:, position], axis=0)  # The desk's edge: its first row of page.
        if not _straight(position, depth, STRAIGHT * side.shape[0]):
            return False
    return found


def _straight(x: np.ndarray, y: np.ndarray, tolerance: float) -> bool:
    """Whether points lie on a line to within `tolerance`, but for a quarter of them.

    The quarter that strays furthest from a first fit (where the desk along
    the next side cuts in) is left out of the second.
    """
    residual = np.abs(y - np.polyval(np.polyfit(x, y, 1), x))
    kept = residual <= np.percentile(residual, 75)
    residual = np.abs(y - np.polyval(np.polyfit(x[kept], y[kept], 1), x))
    return np.percentile(residual, 75) <= tolerance
