"""From the studies to one model: paired comparisons, the combination rule, the choice.

Each study's best setting is compared with the run's own setting, trained
from the same seed on the same images, image by image on the validation set
(`paired_difference`); it changes the configuration only when it wins by
more than `NOISE_SES` standard errors of that paired difference (`combine`).
The winners that do are applied together
(`tuning.mnist_settings.combination_value`), that combination trains once
more at the same budget, and the best of it, the single winners and the run's
own configuration is retrained (`choose`). Pure functions, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np

from hw1_keras.mnist.config import MnistConfig
from tuning.mnist_settings import (Study, apply_setting, combination_study, combination_value,
                                   setting_label)

# A study's winner changes the configuration when it beats the run's own
# setting by more than this many standard errors of the paired difference.
# Two, not one: the seven studies make up to seven such comparisons, and at
# one standard error a study with no effect at all would pass about one time
# in six (at two, about one in forty); seed-to-seed variation of the
# trained models comes on top of what the validation images measure.
NOISE_SES = 2.0


class SettingResult(NamedTuple):
    """One trained setting of a study, as `combine` reads it."""

    value: Any  # The setting.
    accuracy: float  # Its best validation accuracy.
    correct: np.ndarray  # Per validation image, at that best epoch: classified right.
    seconds: float  # Its training time (for configurations trained once, the original's).


class Paired(NamedTuple):
    """Setting a minus setting b on the same validation images (`paired_difference`)."""

    margin: float  # Accuracy of a minus accuracy of b.
    se: float  # Standard error of `margin`.
    a_only: int  # Images a classified right and b wrong.
    b_only: int  # And the other way round.


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray) -> Paired:
    """The accuracy difference of two models on the same images, and its standard error.

    Paired per image: an image both get right or both get wrong adds nothing
    to the difference, so only the images they disagree on (McNemar's
    discordant pairs) carry noise. The standard error is that of the mean of
    the per-image differences d_i in {-1, 0, 1}: sqrt(var(d) / n). For two
    models at 99.5% on 12,000 images that disagree on 60, about 0.065
    points, against 0.09 for the same two accuracies taken as independent.

    Raises:
        ValueError: The two are not over the same, non-empty, set of images.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_difference needs two equal 1-D masks, got {a.shape} and "
                         f"{b.shape}")
    difference = a.astype(np.int8) - b.astype(np.int8)
    count = len(difference)
    margin = float(difference.mean())
    variance = float(difference.var(ddof=1)) if count > 1 else math.inf
    return Paired(margin, math.sqrt(variance / count), int(np.sum(difference > 0)),
                  int(np.sum(difference < 0)))


class Verdict(NamedTuple):
    """What one study says about the configuration (`combine`)."""

    study: str
    value: Any  # The study's best setting; None when it could not be compared.
    label: str
    accuracy: float | None
    paired: Paired | None  # The best setting against the run's own; None as for `value`.
    seconds_ratio: float | None  # Its training time over the run's own setting's.
    changed: bool  # Whether it changes the configuration.
    reason: str  # Why (or why not), in a few words.


class Combination(NamedTuple):
    """The studies' clear winners together (`combine`)."""

    config: MnistConfig  # The run's configuration with every changing verdict applied.
    value: str  # The same as the combined study's setting (`combination_value`).
    verdicts: tuple[Verdict, ...]  # One per study, in study order.

    @property
    def changes(self) -> tuple[Verdict, ...]:
        """The verdicts that change the configuration."""
        return tuple(v for v in self.verdicts if v.changed)


def combine(base: MnistConfig, studies: Sequence[tuple[Study, Sequence[SettingResult]]],
            noise_ses: float = NOISE_SES) -> Combination:
    """Each study's best setting, where it clearly beats the run's own, applied together.

    A study's best setting is its most accurate one. It changes the
    configuration only if it is not the run's own setting and beats it by
    more than `noise_ses` standard errors of their paired difference (both
    trained from the same seed on the same images, so the comparison is
    image by image). A study without a result for the run's own setting
    (stopped by `--trials`, or failed) changes nothing. Changes apply in
    study order (depth before filters: 3 blocks, then each block's filters
    scaled from the first).

    Args:
        base: The run's configuration.
        studies: Each study with its trained settings (failed ones left out).
        noise_ses: How many standard errors a win must exceed.
    """
    verdicts = []
    for each, results in studies:
        own = [r for r in results if apply_setting(base, each, r.value) == base]
        others = [r for r in results if apply_setting(base, each, r.value) != base]
        if not own or not others:
            verdicts.append(Verdict(each.name, None, "", None, None, None, False,
                                    "no result for the run's own setting" if not own
                                    else "no other setting trained"))
            continue
        best = max(others, key=lambda r: r.accuracy)  # The first of equals.
        paired = paired_difference(best.correct, own[0].correct)
        ratio = best.seconds / own[0].seconds if own[0].seconds > 0 else None
        if paired.margin <= 0:
            changed, reason = False, "the run's own setting is the study's best"
        elif paired.margin > noise_ses * paired.se:
            changed, reason = True, f"beats the run's own by more than {noise_ses:g} SE"
        else:
            changed, reason = False, f"inside the noise (at most {noise_ses:g} SE)"
        verdicts.append(Verdict(each.name, best.value, setting_label(each, best.value, base),
                                best.accuracy, paired, ratio, changed, reason))
    value = combination_value([(v.study, v.value) for v in verdicts if v.changed])
    return Combination(apply_setting(base, combination_study(value), value), value,
                       tuple(verdicts))


class Candidate(NamedTuple):
    """A configuration `choose` may retrain, with its trial's result."""

    kind: str  # "base" (the run's own), "single" (one study's winner) or "combination".
    study: str | None  # The study ("combined" for a combination; None for the base).
    value: Any  # Its setting in that study.
    label: str
    config: MnistConfig
    result: SettingResult | None  # None: not trained (the base, under a --trials cap).


def choose(base: Candidate, combination: Candidate | None,
           singles: Sequence[Candidate]) -> tuple[Candidate, str]:
    """Which configuration to retrain, and why.

    The most accurate on validation of the run's own configuration, the
    single winners (each beat it clearly in its own study) and their
    combination (its check trial): all trained from the same seed at the
    same budget and scored on the same images: the combination where the
    winners add up, a single winner where they do not (one setting undoing
    another's gain). Of equals, the one with fewer changes: the run's own,
    then the single winners in study order, then the combination.

    Args:
        base: The run's own configuration.
        combination: The winners together, with its check trial; None when
            the check did not run (`--trials` stopped the studies). With no
            winner it is the base, with one it is that winner.
        singles: The winners that changed the configuration (`combine`).
    """
    if base.result is None:
        return base, "the run's own configuration was not trained: nothing to compare with"
    checked = combination is not None and combination.result is not None
    pool = [*singles, *([combination] if checked else [])]
    best = max(pool, key=lambda c: c.result.accuracy, default=None)  # The first of equals.
    if best is None or best.result.accuracy <= base.result.accuracy:
        return base, "no study's winner beat it by more than the noise"
    if best is combination:
        return best, ("the winners together scored highest, above the run's own "
                      "configuration" + (" and each winner alone" if len(singles) > 1 else ""))
    if not checked:
        return best, "the widest clear win; the winners together were not checked"
    return best, (f"scored highest, above the run's own configuration and the winners "
                  f"together ({combination.result.accuracy:.2%})")
