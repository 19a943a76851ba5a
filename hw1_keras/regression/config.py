"""The regression task's configuration: the homework's winning recipe."""

from __future__ import annotations

import dataclasses
import math

from hw1_keras.config import (
    absolute_path, option, require, require_count, require_network_fits, require_seed,
)

ACTIVATIONS = ("selu", "sigmoid", "relu", "tanh", "elu", "gelu", "linear")
# Copies trained side by side cost little while the stacked step is
# overhead-bound; past a few dozen an ensemble of this network gains nothing.
MAX_ENSEMBLE = 64
# The most points the network sees at once: validation's batches
# (`hw1_keras.regression.model.VALIDATION_BATCH`); the training batches of the
# embedded data's 100 points are smaller.
LARGEST_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class RegressionConfig:
    """Everything that decides a regression run; `metrics.json` records it.

    `train` and `test` are made absolute, so that a rerun from another
    directory is recognized as the same run.
    """

    seed: int = option(0, "seeds weight init and batch order; same seed, same result")
    epochs: int = option(
        50_000, "the homework's budget: 100,000 Adam steps at batch 50 on 100 points"
    )
    batch_size: int = option(
        50, "the homework's grid winner; 2 steps per epoch on 100 points"
    )
    learning_rate: float = option(
        4e-4, "the homework's grid winner for Adam", flag="--lr"
    )
    weight_decay: float = option(
        1.5e-3,
        "the homework's grid winner; PyTorch-style decay wd*w, i.e. an L2 penalty "
        "wd/2*sum(w^2) on the kernels",
    )
    units: tuple[int, ...] = option(
        (16, 64), "hidden widths; what remained after shrinking a 3x128 network"
    )
    activations: tuple[str, ...] = option(
        ("selu", "sigmoid"),
        "one per hidden layer; SELU first (self-normalizing), sigmoid for smooth bumps",
    )
    log_every: int = option(
        500,
        "epochs between learning-curve points; also the epochs run per compiled "
        "call, so larger is faster (progress lines come every few seconds)",
    )
    ensemble: int = option(
        1,
        "independently seeded copies trained side by side and exported as one model "
        "answering their mean; 1 trains the single network",
    )
    data_seed: int = option(
        2020, "seeds the embedded data set; fixed so every run sees the same points"
    )
    train: str | None = option(None, "training CSV (input,label); default: embedded data")
    test: str | None = option(None, "test CSV (input,label); default: embedded data")

    def __post_init__(self):
        absolute_path(self, "train")
        absolute_path(self, "test")
        require_seed(self)
        require_seed(self, "data_seed")
        require_count(self, "epochs")
        require_count(self, "batch_size")
        require(0 < self.learning_rate < math.inf, self, "learning_rate",
                "a finite number > 0, e.g. 4e-4")
        require(0 <= self.weight_decay < math.inf, self, "weight_decay",
                "a finite number >= 0")
        require_count(self, "log_every")
        require(1 <= self.ensemble <= MAX_ENSEMBLE, self, "ensemble",
                f"a whole number from 1 to {MAX_ENSEMBLE}")
        require(
            len(self.units) >= 1 and all(u >= 1 for u in self.units),
            self, "units", "one or more widths >= 1, e.g. 16,64",
        )
        require_network_fits(self, ("units",), parameter_count(self.units) * self.ensemble,
                             sum(self.units) + 2, LARGEST_BATCH,
                             "use fewer or narrower layers")
        require(
            len(self.activations) == len(self.units),
            self, "activations", f"one activation per hidden layer ({len(self.units)})",
        )
        require(
            all(a in ACTIVATIONS for a in self.activations),
            self, "activations", f"names from {', '.join(ACTIVATIONS)}",
        )
        require(
            (self.train is None) == (self.test is None),
            self, "train" if self.test is None else "test",
            "--train and --test together (or neither, for the embedded data)",
        )


def parameter_count(units: tuple[int, ...]) -> int:
    """The parameters of the MLP with these hidden widths (1 input, 1 output), as
    `hw1_keras.regression.model.build_model` builds it: each Dense layer's
    kernel and bias. Pure, so a network too large to build is refused before
    TensorFlow allocates anything."""
    widths = (1, *units, 1)
    return sum(inputs * outputs + outputs for inputs, outputs in zip(widths, widths[1:]))
