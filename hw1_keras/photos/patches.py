"""Which ink is the digit: connected patches, specks, and what reaches in from the edge.

Once ink is told from paper (`paper.ink_strength`), a photo's ink is rarely
the digit alone: a speck of dust, a smudge, the edge of a desk or a finger
holding the page count as ink too. The digit is found here as connected
patches of ink, and `images.to_mnist` crops to them.
"""

from __future__ import annotations

import numpy as np

from hw1_keras.photos import masks

# Ink near the digit (a share of its size) is part of it: any ink this near...
NEAR = 0.25
# ...and patches holding this share of the digit's ink this near (a 5's bar).
PART, PART_NEAR = 0.05, 0.5
# The digit may be a patch clear of the image's edge with this share of the
# ink of a larger one that touches it (a desk, a finger reaching into the photo)...
SEED_SHARE = 0.02
DIGIT_EXTENT = 0.1  # ...if it spans this share of the image's longer side, and the larger one
ALONG_EDGE = 0.5  # lies along the edge for this share of its box (a digit's strokes cross it).
EDGE_NEAR = 0.15  # Larger patches at the edge join such a digit only this near.


def digit_ink(ink: np.ndarray) -> np.ndarray:
    """The ink mask without the specks away from the digit.

    The digit is the connected patch of ink with the most ink, and every patch
    near it: within `NEAR` times the digit's size (a stroke broken by a faint
    pen), or within `PART_NEAR` times for a patch holding `PART` of its ink (a
    5's detached bar). Further away, a patch is a speck, a smudge or the edge
    of something else in the photo. Something reaching into the photo from
    its edge (a desk, a finger, a shadow) can hold more ink than the digit:
    where the largest patch lies along the edge (`ALONG_EDGE`) and a patch
    clear of it holds `SEED_SHARE` of as much and spans `DIGIT_EXTENT` of the
    image (not a speck), that one is the digit; patches touching the edge
    with `PART` of its ink or more join it only if smaller and within
    `EDGE_NEAR` of its size. (A digit that runs off the image on several
    sides, lying along the edge, and has a part clear of it, a 5's bar, can
    then be read from that part alone: crop with a margin.)

    Args:
        ink: boolean mask, shape (H, W), with at least one pixel set.
    """
    count, factor = masks.pooled(ink)
    labels = masks.label(count > 0)
    mass = np.bincount(labels.ravel(), weights=count.ravel())
    mass[0] = 0
    boxes = {label: masks.box(labels == label) for label in range(1, len(mass)) if mass[label]}

    def at_edge(label: int) -> bool:
        top, left, bottom, right = boxes[label]
        return min(top, left) == 0 or bottom == count.shape[0] - 1 or right == count.shape[1] - 1

    def extent(label: int) -> int:
        top, left, bottom, right = boxes[label]
        return max(bottom - top, right - left) + 1

    def along_edge(label: int) -> float:
        """The largest share of the patch's box side that lies on the image's edge."""
        top, left, bottom, right = boxes[label]
        patch = labels == label
        last_row, last_column = count.shape[0] - 1, count.shape[1] - 1
        sides = [(patch[0], top == 0, right - left), (patch[-1], bottom == last_row, right - left),
                 (patch[:, 0], left == 0, bottom - top),
                 (patch[:, -1], right == last_column, bottom - top)]
        return max((np.count_nonzero(edge) / (length + 1) for edge, on, length in sides if on),
                   default=0.0)

    seed = int(mass.argmax())
    inner = [label for label in boxes if not at_edge(label)]
    if at_edge(seed) and along_edge(seed) >= ALONG_EDGE and inner:
        largest_inner = max(inner, key=lambda label: mass[label])
        if (mass[largest_inner] >= SEED_SHARE * mass[seed]
                and extent(largest_inner) >= DIGIT_EXTENT * max(count.shape)):
            seed = largest_inner
    clear_of_edge = not at_edge(seed)
    keep = {seed}
    grown = True
    while grown:  # Take in the patches near what is kept, until none is.
        top, left, bottom, right = masks.union(boxes[label] for label in keep)
        size = max(bottom - top, right - left) + 1
        kept_mass = sum(mass[label] for label in keep)

        def near(label: int) -> bool:
            t, l, b, r = boxes[label]
            gap = max(top - b, t - bottom, left - r, l - right, 0)
            share = NEAR if mass[label] < PART * kept_mass else PART_NEAR
            if clear_of_edge and at_edge(label) and mass[label] >= PART * kept_mass:
                # Reaching in from the edge: a part of the digit only if
                # smaller and all but touching it (a 5's bar off the edge).
                share = EDGE_NEAR if mass[label] < kept_mass else -1
            return gap <= share * size

        joining = {label for label in boxes if label not in keep and near(label)}
        grown = bool(joining)
        keep |= joining
    kept = np.isin(labels, sorted(keep))
    kept = np.repeat(np.repeat(kept, factor, axis=0), factor, axis=1)
    return ink & kept[:ink.shape[0], :ink.shape[1]]
