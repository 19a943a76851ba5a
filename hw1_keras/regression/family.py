"""The benchmark family: 24 generated data sets of the embedded one's kind.

One data set can hide how a search behaves on data it was not built on (the
embedded set's gentle ends hid that folds at the ends of x score
extrapolation). `family()` makes many sets of the same kind, seeded, so the
family is the same everywhere: 100 noisy training points in clusters with two
dark intervals of different widths, 100 low-noise test points uniform over
the training range, for 4 target shapes x 3 layouts x 2 noise levels.
`python run.py bench tune --family` judges the search on them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw1_keras.regression.data import (GAPS, TEST_NOISE_SD, TEST_SIZE, TRAIN_SIZE, Split,
                                       sample_segments, split, target_function)


def _steep(x):
    """Rises steeply at both ends of x, with a wave in the middle."""
    return 0.1 * np.sinh(x) + np.sin(1.2 * x)


def _bumps(x):
    """A sum of three bumps of different widths and signs on a slight slope."""
    return (2.0 * np.exp(-((x + 3.0) ** 2) / 0.5) - 1.5 * np.exp(-((x - 0.3) ** 2) / 0.8)
            + 1.8 * np.exp(-((x - 2.8) ** 2) / 0.4) + 0.2 * x)


def _kink(x):
    """Two straight pieces meeting at a kink at x = 1, with a small ripple."""
    return np.where(x < 1.0, -0.9 * (x - 1.0), 1.6 * (x - 1.0)) - 1.5 + 0.3 * np.sin(2.0 * x)


FAMILY_SHAPES = {"cubic": target_function, "steep": _steep, "bumps": _bumps, "kink": _kink}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a family member's training points lie.

    Attributes:
        name: Its name in the member's name.
        segments: Stretches of x the training points fill uniformly, in
            proportion to their lengths.
        gaps: The two dark intervals among the spaces between segments (the
            other spaces are narrow, as between clusters).
    """

    name: str
    segments: tuple[tuple[float, float], ...]
    gaps: tuple[tuple[float, float], ...]


FAMILY_LAYOUTS = (
    # The embedded set's: uniform outside two gaps 2.0 and 1.4 wide.
    Layout("embedded", ((-5.0, -3.0), (-1.0, 1.8), (3.2, 5.0)), GAPS),
    # Five clusters; gaps 2.0 and 1.2 wide, and two narrow spaces of 0.5.
    Layout("five-clusters", ((-5.0, -4.0), (-3.5, -2.4), (-0.4, 0.8), (1.3, 2.4), (3.6, 5.0)),
           ((-2.4, -0.4), (2.4, 3.6))),
    # Three clusters; a narrow gap (0.8) on the left, a wide one (2.5) right of centre.
    Layout("three-clusters", ((-5.0, -2.7), (-1.9, 0.5), (3.0, 5.0)),
           ((-2.7, -1.9), (0.5, 3.0))),
)
FAMILY_NOISE_SDS = (0.3, 0.7)
FAMILY_SEED = 7


@dataclasses.dataclass(frozen=True)
class FamilyMember:
    """One data set of the family: its name, splits and dark intervals."""

    name: str
    train: Split
    test: Split
    gaps: tuple[tuple[float, float], ...]


def family_member(shape: str, layout: Layout, noise_sd: float, seed: int) -> FamilyMember:
    """One family data set, deterministic in its arguments.

    Args:
        shape: A key of `FAMILY_SHAPES`.
        layout: Where the training points lie.
        noise_sd: The training labels' noise; the test labels' is `TEST_NOISE_SD`.
        seed: Seeds positions and noise.
    """
    function = FAMILY_SHAPES[shape]
    rng = np.random.default_rng(seed)
    x_train = np.sort(sample_segments(rng, layout.segments, TRAIN_SIZE))
    x_test = np.sort(rng.uniform(x_train[0], x_train[-1], TEST_SIZE))
    y_train = function(x_train) + rng.normal(0.0, noise_sd, TRAIN_SIZE)
    y_test = function(x_test) + rng.normal(0.0, TEST_NOISE_SD, TEST_SIZE)
    return FamilyMember(f"{shape}/{layout.name}/sd{noise_sd:g}", split(x_train, y_train),
                        split(x_test, y_test), layout.gaps)


def family(seed: int = FAMILY_SEED) -> list[FamilyMember]:
    """The benchmark family: every shape x layout x noise level, 24 data sets.

    The same `seed` gives the same sets everywhere; member i is seeded with
    `seed + i`.
    """
    combinations = [(shape, layout, sd) for shape in FAMILY_SHAPES
                    for layout in FAMILY_LAYOUTS for sd in FAMILY_NOISE_SDS]
    return [family_member(shape, layout, sd, seed + index)
            for index, (shape, layout, sd) in enumerate(combinations)]
