"""`mnist --tune`'s policy: equal budgets per study, paired noise, studies -> one model.

Pure functions on fake study results: no training, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hw1_keras.mnist.config import MnistConfig
from tuning.mnist_combine import (Candidate, SettingResult, choose, combine,
                                  paired_difference)
from tuning.mnist_settings import (
    STUDIES, apply_setting, combination_changes, combination_study, combination_value,
    scaled_learning_rate, setting_label, steps_per_epoch, study, trial_budget)

BASE = MnistConfig()  # Batch 128, 2 blocks (32/64), batch norm on, augmented copy.
VALIDATION = 12_000


# Equal budget -------------------------------------------------------------------------


@pytest.mark.parametrize("augmented_copy, images", [(1, 48_000), (0, 16_000), (1, 1_000)])
def test_every_setting_takes_the_run_s_own_steps_or_fewer_and_no_more_images(
        augmented_copy, images):
    base = dataclasses.replace(BASE, augmented_copy=augmented_copy)
    own = trial_budget(base, base, images, 3)
    assert own == (images, 3 * math.ceil((1 + augmented_copy) * images / 128))
    for each in STUDIES:
        for value in each.values:
            budget = trial_budget(base, apply_setting(base, each, value), images, 3)
            assert budget.steps <= own.steps and budget.images <= images
            if each.name != "batch_size":  # Same batch, same images: the same steps.
                assert budget == own


def test_a_smaller_batch_takes_the_same_steps_on_fewer_images():
    # 48,000 images + their augmented copy at batch 128: 750 steps an epoch.
    for batch, images in ((16, 6_000), (64, 24_000)):
        config = apply_setting(BASE, study("batch_size"), batch)
        budget = trial_budget(BASE, config, 48_000, 2)
        assert budget == (images, 1_500)
        assert steps_per_epoch(budget.images, config) == 750
    # --quick: 16,000 originals, no copy: 125 steps an epoch, 2,000 images at batch 16.
    quick = dataclasses.replace(BASE, augmented_copy=0)
    assert trial_budget(quick, apply_setting(quick, study("batch_size"), 16), 16_000, 2) == (
        2_000, 250)


def test_a_larger_batch_sees_the_same_images_in_fewer_steps():
    base = dataclasses.replace(BASE, batch_size=16, learning_rate=1e-3)
    config = apply_setting(base, study("batch_size"), 128)
    assert trial_budget(base, config, 48_000, 2) == (48_000, 2 * 750)
    assert trial_budget(base, base, 48_000, 2) == (48_000, 2 * 6_000)


def test_a_batch_size_brings_its_square_root_scaled_learning_rate():
    assert apply_setting(BASE, study("batch_size"), 16).learning_rate == pytest.approx(
        2e-3 / math.sqrt(8))
    assert apply_setting(BASE, study("batch_size"), 64).learning_rate == pytest.approx(
        2e-3 / math.sqrt(2))
    odd = dataclasses.replace(BASE, learning_rate=1.234567e-3)
    assert apply_setting(odd, study("batch_size"), 128) == odd  # Its own batch: unchanged.
    assert scaled_learning_rate(1e-3, 16, 64) == pytest.approx(2e-3)
    assert setting_label(study("batch_size"), 16, BASE) == "batch 16 (lr 0.000707)"
    assert setting_label(study("batch_size"), 128, BASE) == "batch 128"


# Paired noise -------------------------------------------------------------------------


def test_the_paired_standard_error_comes_from_the_images_the_two_disagree_on():
    a = np.ones(VALIDATION, bool)
    b = np.ones(VALIDATION, bool)
    a[:60] = False  # Both wrong on 40 images; a alone on 20 more, b alone on 50.
    b[:40] = False
    b[60:110] = False
    paired = paired_difference(a, b)
    assert (paired.a_only, paired.b_only) == (50, 20)
    assert paired.margin == pytest.approx(30 / VALIDATION)
    d = np.r_[np.ones(50), -np.ones(20), np.zeros(VALIDATION - 70)]
    assert paired.se == pytest.approx(np.std(d, ddof=1) / math.sqrt(VALIDATION))
    # About sqrt(70) / n: the 11,930 images they agree on add no noise.
    assert paired.se == pytest.approx(math.sqrt(70) / VALIDATION, rel=0.01)
    assert paired_difference(b, a).margin == -paired.margin
    same = paired_difference(a, a)
    assert (same.margin, same.se, same.a_only) == (0.0, 0.0, 0)


def test_paired_is_far_tighter_than_two_independent_accuracies():
    rng = np.random.default_rng(0)
    b = rng.random(VALIDATION) > 0.02  # 98%.
    a = b.copy()
    flips = rng.choice(VALIDATION, 60, replace=False)
    a[flips] = ~a[flips]
    paired = paired_difference(a, b)
    independent = math.sqrt(2 * 0.98 * 0.02 / VALIDATION)
    assert paired.se < independent / 2


def test_paired_difference_refuses_masks_of_other_images():
    with pytest.raises(ValueError, match="two equal 1-D masks"):
        paired_difference(np.ones(10, bool), np.ones(11, bool))


# From studies to one model ------------------------------------------------------------


def masks(own_errors: int, errors: int, shared: int, count: int = VALIDATION):
    """Two correctness masks: `own_errors` and `errors` wrong, `shared` of them the same."""
    own = np.ones(count, bool)
    own[:own_errors] = False
    other = np.ones(count, bool)
    other[:shared] = False
    other[own_errors:own_errors + errors - shared] = False
    return own, other


def results(each, own, others: dict, seconds=10.0):
    """A study's results: the run's own setting with mask `own`, others from `others`."""
    own_value = next(v for v in each.values if apply_setting(BASE, each, v) == BASE)
    made = [SettingResult(own_value, float(own.mean()), own, seconds)]
    made += [SettingResult(value, float(mask.mean()), mask, seconds)
             for value, mask in others.items()]
    return each, made


def test_a_winner_inside_the_noise_does_not_change_the_configuration():
    # 3 blocks: 200 errors against 210, disagreeing on 50 images: +0.08 points, SE 0.06.
    own, deeper = masks(210, 200, 180)
    combination = combine(BASE, [results(study("depth"), own, {3: deeper, 1: ~own})])
    (verdict,) = combination.verdicts
    assert verdict.value == 3 and verdict.paired.margin > 0 and not verdict.changed
    assert verdict.paired.margin < 2 * verdict.paired.se
    assert "inside the noise" in verdict.reason
    assert combination.config == BASE and combination.changes == ()
    assert combination_changes(combination.value) == []


def test_a_clear_winner_changes_the_configuration():
    # 3 blocks: 150 errors against 210, 30 more right than wrong of its 90 disagreements.
    own, deeper = masks(210, 150, 135)
    combination = combine(BASE, [results(study("depth"), own, {1: ~own, 3: deeper},
                                         seconds=20.0)])
    (verdict,) = combination.verdicts
    assert verdict.changed and verdict.value == 3 and verdict.label == "3 blocks (32/64/128)"
    assert verdict.paired.margin == pytest.approx(60 / VALIDATION)
    assert verdict.paired.margin > 2 * verdict.paired.se
    assert verdict.seconds_ratio == 1.0
    assert combination.config.filters == (32, 64, 128)
    assert combination_changes(combination.value) == [("depth", 3)]


def test_two_clear_winners_combine_and_the_others_keep_their_settings():
    own, deeper = masks(210, 150, 135)
    _, no_norm = masks(210, 140, 100)
    _, wide = masks(210, 205, 190)  # Inside the noise.
    combination = combine(BASE, [
        results(study("depth"), own, {1: ~own, 3: deeper}),
        results(study("filters"), own, {16: ~own, 64: wide}),
        results(study("dense"), own, {128: ~own, 512: ~own}),  # The run's own is best.
        results(study("batch_norm"), own, {0: no_norm}),
    ])
    assert [v.study for v in combination.changes] == ["depth", "batch_norm"]
    assert combination.config == dataclasses.replace(BASE, filters=(32, 64, 128),
                                                      batch_norm=0)
    filters, dense = combination.verdicts[1:3]
    assert not filters.changed and "inside the noise" in filters.reason
    assert not dense.changed and dense.reason == "the run's own setting is the study's best"
    check = combination_study(combination.value)
    assert apply_setting(BASE, check, combination.value) == combination.config
    assert setting_label(check, combination.value, BASE) == (
        "3 blocks (32/64/128) + batch norm off")


def test_winners_of_depth_and_filters_compose_in_study_order():
    value = combination_value([("depth", 3), ("filters", 64)])
    config = apply_setting(BASE, combination_study(value), value)
    assert config.filters == (64, 128, 256)
    assert setting_label(combination_study(value), value, BASE) == (
        "3 blocks (32/64/128) + filters 64/128/256")
    assert setting_label(combination_study("[]"), "[]", BASE) == "the run's own configuration"


def test_a_study_without_the_run_s_own_setting_changes_nothing():
    _, no_norm = masks(210, 100, 80)
    each = study("batch_norm")
    combination = combine(BASE, [(each, [SettingResult(0, float(no_norm.mean()), no_norm,
                                                       5.0)])])
    (verdict,) = combination.verdicts
    assert not verdict.changed and verdict.reason == "no result for the run's own setting"
    assert combination.config == BASE


def candidate(kind, accuracy, errors=None, study_name=None, config=BASE):
    mask = np.ones(VALIDATION, bool)
    mask[:errors if errors is not None else round((1 - accuracy) * VALIDATION)] = False
    return Candidate(kind, study_name, None, kind, config,
                     SettingResult(None, float(mask.mean()), mask, 1.0))


def test_the_most_accurate_of_the_combination_and_the_winners_alone_is_retrained():
    base = candidate("base", 0, errors=210)
    depth = candidate("single", 0, errors=150, study_name="depth")
    norm = candidate("single", 0, errors=140, study_name="batch_norm")
    both = candidate("combination", 0, errors=120, study_name="combined")
    chosen, why = choose(base, both, [depth, norm])
    assert chosen is both and why.startswith("the winners together scored highest")
    # Together worse than one alone (one undoes the other's gain): that one.
    weaker = candidate("combination", 0, errors=160, study_name="combined")
    chosen, why = choose(base, weaker, [depth, norm])
    assert chosen is norm and "the winners together (98.67%)" in why
    worse = candidate("combination", 0, errors=230, study_name="combined")
    assert choose(base, worse, [depth, norm])[0] is norm
    # Of equals, fewer changes.
    tied = candidate("combination", 0, errors=140, study_name="combined")
    assert choose(base, tied, [depth, norm])[0] is norm
    # Not checked (--trials stopped the studies): the widest single win.
    chosen, why = choose(base, None, [depth, norm])
    assert chosen is norm and "not checked" in why


def test_with_no_clear_winner_the_run_s_own_configuration_is_retrained():
    base = candidate("base", 0, errors=210)
    same = candidate("combination", 0, errors=210, study_name="combined")
    assert choose(base, same, [])[0] is base
    assert choose(base, None, [])[0] is base
    untrained = Candidate("base", None, None, "base", BASE, None)
    assert choose(untrained, None, [])[0] is untrained
