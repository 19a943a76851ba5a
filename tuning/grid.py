"""KerasTuner's grid search, made to continue after a reload.

`keras_tuner.GridSearch` walks its grid from each finished trial to the next
combination, and keeps that walk (the oracle's `_ordered_ids` and
`_populate_next`) in memory only. A tuner reloaded from its folder
(`overwrite=False`) knows its finished trials but not where to go on: unless
a trial was running when the earlier process died (KerasTuner retries that
one and walks on from it), the reloaded search stops at once and leaves the
rest of the grid unvisited, for example when a rerun raises `max_trials`.
`ResumableGrid` rebuilds the walk from the finished trials after a reload.
"""

from __future__ import annotations

import functools

from hw1_keras import compat


class ResumableGrid:
    """Mixin for a `keras_tuner.GridSearch` subclass: a reloaded grid continues.

    Put it before `keras_tuner.GridSearch` in the bases.
    """

    def reload(self):
        super().reload()
        restore_walk(self.oracle)


def restore_walk(oracle) -> None:
    """Rebuilds a `GridSearchOracle`'s walk from its trials (KerasTuner internals).

    The oracle proposes, for each trial in `_populate_next`, the combination
    after it, unless the trial after it in `_ordered_ids` (kept in grid
    order) already has that combination. With every started trial in grid
    order in both, it proposes exactly the combinations no trial has tried.
    """
    def values(trial_id):
        return oracle.trials[trial_id].hyperparameters.values

    order = sorted(oracle.start_order, key=functools.cmp_to_key(
        lambda a, b: compat.grid_compare(oracle, values(a), values(b))))
    compat.set_grid_walk(oracle, order)
