"""The homework's MNIST studies and their budget, without TensorFlow.

A study varies one thing of the configuration and keeps everything else at
its value, as the homework's one-factor comparisons did (the report's figs.
3-8). The CLI validates against these before importing anything heavy.

Equal budget (`trial_budget`). Every setting trains the same number of
epochs, and no setting takes more optimizer steps or sees more training
images than the run's own configuration. In the studies of the network
(depth, filters, dense units, dropout, batch norm, downsampling) that holds
as it is: same images, same batch, so same steps; they differ in time per
step, which the studies record but do not equalize (a slower winner is
slower in the final training too, and the summary says by how much). The
batch-size study is where equal epochs are unfair: at 16 images a step, an
epoch takes 8 times the steps of batch 128, and a trial of a few hundred
steps is won by whoever takes the most of them (the quick search retrained
batch 16 for that reason alone). So a batch below the configuration's trains
on fewer images, as many as its steps carry (steps x batch), and a batch
above it on the same images in fewer steps; the warm-up and cosine schedule
span each trial's own steps. A batch size also brings its learning rate:
the peak rate scales with the square root of the batch (`scaled_learning_rate`,
the square-root rule for Adam-type optimizers, Malladi et al. 2022; the
linear rule is SGD's), so batch 16 is not judged at a rate tuned for 128.

How the studies' results become one model: `tuning.mnist_combine`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, NamedTuple, Sequence

from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.mnist.config import MnistConfig


@dataclasses.dataclass(frozen=True)
class Study:
    """One one-factor study.

    Attributes:
        name: Its name on the command line and in file names.
        parameter: The hyperparameter it varies, as `build_model` names it.
        values: The settings compared, in the order they are trained.
        title: What the study compares, for its plot.
    """

    name: str
    parameter: str
    values: tuple
    title: str


STUDIES = (
    Study("depth", "conv_blocks", (1, 2, 3), "Depth: number of conv blocks"),
    # The first block's filters, each later block doubling them (16/32, 32/64,
    # 64/128 for two blocks), as the homework scaled the whole network.
    Study("filters", "filters_1", (16, 32, 64), "Filters per conv block"),
    Study("dense", "dense_units", (128, 512, 1024), "Units of the dense layer"),
    # The dropout before the dense layer's output, where most weights are.
    Study("dropout", "dense_dropout", (0.0, 0.25, 0.5), "Dropout before the logits"),
    Study("batch_size", "batch_size", (16, 64, 128), "Batch size"),
    Study("batch_norm", "batch_norm", (0, 1), "Batch normalization after each conv"),
    Study("downsampling", "downsampling", ("stride", "maxpool"),
          "Downsampling: stride-2 convolutions versus max-pooling"),
)
STUDY_NAMES = tuple(study.name for study in STUDIES)

# 3 epochs of all 48,000 images and their augmented copy (2,250 steps) per
# setting, so that a whole `mnist --tune` fits 90 minutes on 2 CPU cores. On
# quiet cores an epoch of the default network takes about 70 s (56-88 s,
# BENCHMARKS.md), so a trial about 220 s. The 13 trainings and the check cost
# about 12 such trials: the quick search's trial times, relative to the
# default network's, sum to 11.2 (filters 64/128 alone 3.0; 3 blocks, the
# small dense layers, no batch norm and stride 2 less than 1; the smaller
# batches train on fewer images), and the check adds at most about one. So
# 12 x 220 s = 45 min, plus the 20-epoch retraining and export, 24 min: 69 min
# (86 at 88 s an epoch). At 5 epochs it would be 97 min (122).
DEFAULT_EPOCHS_PER_TRIAL = 3
# --quick: every trial sees this many training images for this many epochs
# (the originals only, as the quick preset trains), sized so that all 19
# settings, the check and the retraining fit 15 minutes on 2 quiet CPU cores:
# 653 s before the check existed (BENCHMARKS.md), when batch 16 and 64 also
# trained on all 16,000 images (96 s of it); the check is at most one more
# training (about 40 s). Under a load of 7-11 (other trainings on the same
# cores) the whole command took 2,726 s, every trial 2-4.5 times slower.
QUICK_EPOCHS_PER_TRIAL = 2
QUICK_TRIAL_IMAGES = 16_000


# The check of the studies' winners together: one more "study" of one setting.
COMBINED = "combined"
COMBINATION = "combination"  # Its hyperparameter: the winners, as `combination_value`.
# What makes trials of different settings comparable (`trial_budget`); part
# of a search's identity, so a search made under another rule is not mixed in.
BUDGET_RULE = ("equal epochs; no more optimizer steps and no more images than the run's own "
               "configuration; peak learning rate x sqrt(batch / the configuration's batch)")


def study(name: str) -> Study:
    """The study called `name`."""
    return _named(name)


def _named(name: str) -> Study:  # For functions whose argument `study` hides `study()`.
    return STUDIES[STUDY_NAMES.index(name)]


def combination_study(value: str = "[]") -> Study:
    """The check of the studies' winners together: one setting, `value` (`combination_value`)."""
    return Study(COMBINED, COMBINATION, (value,), "The studies' clear winners together")


def combination_value(changes: Sequence[tuple[str, Any]]) -> str:
    """`(study name, setting)` pairs as the combined study's one setting (canonical JSON)."""
    return json.dumps([[name, value] for name, value in changes], separators=(",", ":"))


def combination_changes(value: str) -> list[tuple[str, Any]]:
    """The `(study name, setting)` pairs of a `combination_value`."""
    return [(name, setting) for name, setting in json.loads(value)]


def scaled_learning_rate(learning_rate: float, batch_size: int, new_batch_size: int) -> float:
    """The peak learning rate for `new_batch_size`, given `learning_rate` at `batch_size`.

    The square-root rule for Adam-type optimizers (Malladi et al., "On the
    SDEs and Scaling Rules for Adaptive Gradient Algorithms", 2022): k times
    the batch, sqrt(k) times the rate. A batch of 16 at a batch of 128's rate
    takes steps as large through gradients 8 times as noisy.
    """
    if new_batch_size == batch_size:
        return learning_rate  # Exactly: the run's own setting must stay the run's configuration.
    return learning_rate * math.sqrt(new_batch_size / batch_size)


def apply_setting(config: MnistConfig, study: Study, value) -> MnistConfig:
    """`config` with one study's setting; everything else as it was.

    More conv blocks than `config.filters` has continue its doubling (32, 64
    -> 32, 64, 128); the filters study scales every block from the first; a
    batch size brings its learning rate (`scaled_learning_rate`); the
    combined study applies its studies' settings in order.
    """
    if study.parameter == COMBINATION:
        for name, setting in combination_changes(value):
            config = apply_setting(config, _named(name), setting)
        return config
    if study.parameter == "conv_blocks":
        filters = config.filters[:value]
        while len(filters) < value:
            filters += (2 * filters[-1],)
        return dataclasses.replace(config, filters=filters)
    if study.parameter == "filters_1":
        return dataclasses.replace(
            config, filters=tuple(value * 2**index for index in range(len(config.filters))))
    if study.parameter == "batch_size":
        return dataclasses.replace(config, batch_size=value, learning_rate=scaled_learning_rate(
            config.learning_rate, config.batch_size, value))
    return dataclasses.replace(config, **{study.parameter: value})


def setting_label(study: Study, value, config: MnistConfig) -> str:
    """A setting in a few words, for legends, lines and the table."""
    if study.parameter == COMBINATION:
        labels = []
        for name, setting in combination_changes(value):
            labels.append(setting_label(_named(name), setting, config))
            config = apply_setting(config, _named(name), setting)
        return " + ".join(labels) or "the run's own configuration"
    applied = apply_setting(config, study, value)
    if study.parameter in ("conv_blocks", "filters_1"):
        blocks = len(applied.filters)
        shown = "/".join(str(f) for f in applied.filters)
        return (f"{blocks} block{'s' * (blocks > 1)} ({shown})"
                if study.parameter == "conv_blocks" else f"filters {shown}")
    if study.parameter == "dense_units":
        return f"{value} units"
    if study.parameter == "dense_dropout":
        return f"dense dropout {value:g}"  # Not --dropout, the conv blocks' one.
    if study.parameter == "batch_size":
        return (f"batch {value}" if value == config.batch_size
                else f"batch {value} (lr {applied.learning_rate:.3g})")
    if study.parameter == "batch_norm":
        return f"batch norm {'on' if value else 'off'}"
    return {"maxpool": "max-pool", "stride": "stride 2"}.get(value, f"{study.parameter} {value}")


class TrialBudget(NamedTuple):
    """What one setting trains on in a study (`trial_budget`)."""

    images: int  # The first this many of the trial images, every epoch.
    steps: int  # Optimizer steps over all the trial's epochs.


def steps_per_epoch(images: int, config: MnistConfig) -> int:
    """Optimizer steps in one epoch of `images` (and their augmented copy) at `config`'s batch."""
    return math.ceil((1 + config.augmented_copy) * images / config.batch_size)


def trial_budget(base: MnistConfig, config: MnistConfig, images: int, epochs: int) -> TrialBudget:
    """Equal budget: the images and steps a setting trains, given the run's configuration.

    Every setting trains `epochs` epochs and takes no more optimizer steps and
    sees no more images than `base` does on `images` images. A smaller batch
    than `base`'s trains on the first `steps x batch` images, so that it takes
    `base`'s steps exactly (at equal epochs it would take more, and in a short
    trial more steps win whatever the batch); a larger one trains on all
    `images` in fewer steps. Any other setting trains as `base` does.

    Args:
        base: The run's configuration.
        config: The setting's configuration (`apply_setting`).
        images: The trial images (`--trial-images`, or the training split).
        epochs: Epochs per trial.
    """
    if config.batch_size < base.batch_size:
        copies = 1 + config.augmented_copy
        images = min(images, max(1, steps_per_epoch(images, base) * config.batch_size // copies))
    return TrialBudget(images, epochs * steps_per_epoch(images, config))


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """How `mnist --tune` searches.

    Attributes:
        studies: Which studies to run, in this order.
        trials: At most this many settings in all (studies in order, each
            study's settings in order); None: every setting. Rerunning with a
            larger number continues where the smaller one stopped.
        epochs_per_trial: Epochs each setting trains.
        trial_images: Training images each setting sees (the first ones of
            the seeded, shuffled training split); None: all of them.
        fresh: Delete an earlier search in the run folder instead of resuming.
        quick: Made by `--quick`: few images and epochs, so the studies are
            noisy; said so in the output.
    """

    studies: tuple[str, ...] = STUDY_NAMES
    trials: int | None = None
    epochs_per_trial: int = DEFAULT_EPOCHS_PER_TRIAL
    trial_images: int | None = None
    fresh: bool = False
    quick: bool = False

    def __post_init__(self):
        unknown = [name for name in self.studies if name not in STUDY_NAMES]
        if unknown or not self.studies or len(set(self.studies)) != len(self.studies):
            raise InputError(f"--studies got {','.join(self.studies) or 'nothing'}; expected "
                             f"distinct names among {','.join(STUDY_NAMES)}")
        if self.trials is not None and self.trials < 1:
            raise InputError(f"--trials got {self.trials}; expected a whole number >= 1")
        if self.epochs_per_trial < 1:
            raise InputError(f"--epochs-per-trial got {self.epochs_per_trial}; expected a "
                             "whole number >= 1")
        if self.trial_images is not None and self.trial_images < 1:
            raise InputError(f"--trial-images got {self.trial_images}; expected a whole "
                             "number >= 1")

    def selected(self) -> tuple[Study, ...]:
        """The studies named by `studies`, in that order."""
        return tuple(study(name) for name in self.studies)

    def identity(self, config: MnistConfig) -> dict:
        """What makes two searches the same (resuming must not mix them).

        The studies chosen and the trial cap are left out, so a rerun may add
        studies or raise `--trials`; so is `config.epochs`, which only the
        winner's retraining uses.
        """
        base = {key: value for key, value in to_dict(config).items() if key != "epochs"}
        return {"config": base, "epochs_per_trial": self.epochs_per_trial,
                "trial_images": self.trial_images, "budget": BUDGET_RULE,
                "studies": {s.name: [s.parameter, list(s.values)] for s in STUDIES}}


def quick_settings(**given) -> StudySettings:
    """`--tune --quick`: few images and epochs per setting (flags given still win)."""
    return StudySettings(**{"epochs_per_trial": QUICK_EPOCHS_PER_TRIAL,
                            "trial_images": QUICK_TRIAL_IMAGES, "quick": True, **given})
