"""The homework's MNIST studies and the `mnist --tune` options, without TensorFlow.

A study varies one thing of the configuration and keeps everything else at
its value, as the homework's one-factor comparisons did (the report's figs.
3-8). The CLI validates against these before importing anything heavy.
"""

from __future__ import annotations

import dataclasses

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

DEFAULT_EPOCHS_PER_TRIAL = 5
# --quick: every trial sees this many training images for this many epochs
# (the originals only, as the quick preset trains), sized so that all 19
# settings and the winner's retraining fit 15 minutes on 2 CPU cores: the
# whole `mnist --tune --quick` took 653 s (BENCHMARKS.md); with 24,000 images
# and a batch-16 winner to retrain, 21 minutes (partly under load from other jobs).
QUICK_EPOCHS_PER_TRIAL = 2
QUICK_TRIAL_IMAGES = 16_000


def study(name: str) -> Study:
    """The study called `name`."""
    return STUDIES[STUDY_NAMES.index(name)]


def apply_setting(config: MnistConfig, study: Study, value) -> MnistConfig:
    """`config` with one study's setting; everything else as it was.

    More conv blocks than `config.filters` has continue its doubling (32, 64
    -> 32, 64, 128); the filters study scales every block from the first.
    """
    if study.parameter == "conv_blocks":
        filters = config.filters[:value]
        while len(filters) < value:
            filters += (2 * filters[-1],)
        return dataclasses.replace(config, filters=filters)
    if study.parameter == "filters_1":
        return dataclasses.replace(
            config, filters=tuple(value * 2**index for index in range(len(config.filters))))
    return dataclasses.replace(config, **{study.parameter: value})


def setting_label(study: Study, value, config: MnistConfig) -> str:
    """A setting in a few words, for legends, lines and the table."""
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
        return f"batch {value}"
    if study.parameter == "batch_norm":
        return f"batch norm {'on' if value else 'off'}"
    return {"maxpool": "max-pool", "stride": "stride 2"}.get(value, f"{study.parameter} {value}")


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
                "trial_images": self.trial_images,
                "studies": {s.name: [s.parameter, list(s.values)] for s in STUDIES}}


def quick_settings(**given) -> StudySettings:
    """`--tune --quick`: few images and epochs per setting (flags given still win)."""
    return StudySettings(**{"epochs_per_trial": QUICK_EPOCHS_PER_TRIAL,
                            "trial_images": QUICK_TRIAL_IMAGES, "quick": True, **given})
