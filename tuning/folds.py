"""How k-fold cross-validation splits the data: random, contiguous or interior folds.

Pure NumPy, no Keras: the CLI checks a split is possible before importing
anything heavy, and a benchmark or a test can draw the same folds a search
uses. `tuning.kfold` scores every trial on them.
"""

from __future__ import annotations

import numpy as np

from hw1_keras.errors import InputError  # A ValueError.


# Interior folds: this fraction of the training points at each end of x (at
# least one) is never validated, so every held-out stretch has training data
# on both sides.
EDGE_FRACTION = 0.05
# An interior fold's boundary moves to the widest spacing between neighbouring
# points within this fraction of a fold's size of where equal sizes would put
# it, so that a cluster of points is held out whole rather than cut in two.
SNAP_FRACTION = 0.25


def kfold_indices(count: int, folds: int, seed: int,
                  order_by: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """A seeded split of `count` samples into `folds` folds of near-equal size.

    With `order_by` (one value per sample), each fold is instead a contiguous
    stretch of those values: fold 0 the smallest, and so on. The first and
    last folds then score extrapolation beyond the data's ends;
    `interior_folds` scores only interpolation.

    Returns:
        One `(train_indices, validation_indices)` pair per fold, each sorted;
        every sample is validated in exactly one fold. The same arguments give
        the same split, so every trial of a search sees the same folds.

    Raises:
        InputError: fewer than 2 folds, or more folds than samples.
    """
    check_folds(folds, count)
    if order_by is not None:
        order = np.argsort(np.asarray(order_by).reshape(count, -1)[:, 0], kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(count)
    return _folds_from_parts(count, [np.sort(part) for part in np.array_split(order, folds)])


def interior_folds(x: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that hold out stretches of x with training data on both sides.

    The lowest and highest `EDGE_FRACTION` of the points (by x, at least one
    at each end) are always trained on. The points between are cut into
    `folds` contiguous stretches of near-equal size, each boundary moved to
    the widest spacing nearby (`SNAP_FRACTION`), so that where the points come
    in clusters a fold tends to be whole clusters. Validating on a stretch
    scores how a model bridges a gap inside the data's range, like the dark
    intervals the test measures, never how it extrapolates past the ends.

    Args:
        x: The inputs, shape (N,) or (N, 1); the first column orders them.
        folds: k.

    Returns:
        As `kfold_indices`, except that the edge points are in no validation set.

    Raises:
        InputError: fewer than 2 folds, or too few points to leave an edge at
            each end and at least one point per fold.
    """
    x = np.asarray(x).reshape(len(x), -1)[:, 0]
    count = len(x)
    check_folds(folds)
    edge = max(1, round(EDGE_FRACTION * count))
    inner = count - 2 * edge
    if inner < folds:
        raise InputError(f"folds={folds}: interior folds keep {edge} point(s) at each end of "
                         f"x for training and need one point per fold, so {count} points "
                         f"allow at most {max(inner, 0)} folds; use fewer folds or --cv random")
    order = np.argsort(x, kind="stable")
    spacing = np.diff(x[order])  # spacing[i]: between sorted points i and i + 1.
    reach = int(SNAP_FRACTION * inner / folds)
    cuts = [edge]
    for fold in range(1, folds):
        ideal = edge + round(fold * inner / folds)  # A fold starts at this sorted position.
        low = max(cuts[-1] + 1, ideal - reach)
        high = min(edge + inner - (folds - fold), ideal + reach)
        # The start with the widest spacing before it; the nearest to the ideal on ties.
        candidates = range(low, high + 1)
        cuts.append(max(candidates, key=lambda start: (spacing[start - 1], -abs(start - ideal))))
    cuts.append(edge + inner)
    parts = [np.sort(order[start:stop]) for start, stop in zip(cuts, cuts[1:])]
    return _folds_from_parts(count, parts)


def _folds_from_parts(count: int, parts: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(train, validation)` per validation part; train is every other sample."""
    everything = np.arange(count)
    return [(np.setdiff1d(everything, part), part) for part in parts]


def cv_folds(kind: str, x: np.ndarray, folds: int, seed: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of one of `tuning.settings.CV_KINDS` for the inputs `x`.

    "interior": `interior_folds`; "contiguous": stretches of x from end to
    end; "random": a seeded random split (`kfold_indices`).
    """
    if kind == "interior":
        return interior_folds(x, folds)
    if kind == "contiguous":
        return kfold_indices(len(x), folds, seed, order_by=x)
    if kind == "random":
        return kfold_indices(len(x), folds, seed)
    raise InputError(f"cv={kind!r}; expected interior, contiguous or random")


def check_folds(folds: int, count: int | None = None, flag: str | None = None) -> None:
    """Raises `InputError` unless 2 <= folds (<= count, when given).

    Args:
        folds: The number of folds asked for.
        count: How many samples there are to split, if known.
        flag: The command-line flag `folds` came from (e.g. "--folds"), for the
            message to name it and its fix; by default it names the argument.
    """
    given = f"{flag} {folds!r}" if flag else f"folds={folds!r}"
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InputError(f"{given}: k-fold cross-validation needs a whole number "
                         "of folds >= 2")
    if count is not None and folds > count:
        fix = f"pass {flag} {count} or fewer" if flag else f"use at most {count}"
        raise InputError(f"{given}: more folds than the {count} samples; each fold "
                         f"needs at least one sample, so {fix}")
