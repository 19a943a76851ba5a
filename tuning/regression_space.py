"""The search space of `regression --tune`: what the screen draws, the grid around its winner.

Pure functions over KerasTuner `HyperParameters` values (a dict per trial):
the screen's space (`screen_space`), the grid around a winner or the
homework's own (`grid_values`, `grid_space`), how a trial's values map to and
from a `RegressionConfig`, how far a configuration is from the run's own
(`distance`, which the one-standard-error rule prefers small), and the labels
the progress lines print.
"""

from __future__ import annotations

import dataclasses
import math

import keras_tuner

from hw1_keras.errors import InputError
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import MAX_DEPTH

# The screen's search space. Widths as powers of two keep the winners readable;
# "linear" is left out as useless for a hidden layer.
SCREEN_UNITS = (4, 8, 16, 32, 64)
SCREEN_ACTIVATIONS = ("selu", "sigmoid", "tanh", "relu", "elu", "gelu")
# The homework's batch sizes: a batch of 25 would double the grid's steps.
SCREEN_BATCH_SIZES = (50, 100)
# Networks of at most about twice the homework's 1,185 parameters: a 5-fold
# grid point of a larger one takes too long for the whole search to fit in
# 10 minutes on 2 cores (per-step time grows with the width). Larger draws
# fail at once as "Oversized" trials (KerasTuner's max_model_size).
SCREEN_MAX_PARAMETERS = 2_500
SCREEN_RATE_RANGE = (1e-4, 1e-2)
SCREEN_DECAY_RANGE = (1e-4, 1e-2)
# The grid around a winner: rates and decays this many times smaller/larger
# (its batch size as the screen chose it: a second batch size would double
# the grid, and the search would no longer fit 5 minutes on 2 cores).
GRID_FACTORS = (2 / 3, 1.0, 3 / 2)
# How far a configuration is from the run's own, for the one-standard-error
# rule: another architecture is farther than any change of rates.
ARCHITECTURE_DISTANCE = 100.0
RECIPE_NAMES = ("learning_rate", "weight_decay", "batch_size")
HOMEWORK_GRID = {
    "learning_rate": [4e-4, 5e-4, 6e-4],
    "weight_decay": [1.3e-3, 1.5e-3, 1.7e-3],
    "batch_size": [50, 100],
}


def screen_space(epochs: int) -> keras_tuner.HyperParameters:
    """Stage 1's space: everything `build_model` and `fit` read, `epochs` fixed."""
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, MAX_DEPTH)
    for index in range(1, MAX_DEPTH + 1):
        hp.Choice(f"units_{index}", list(SCREEN_UNITS))
        hp.Choice(f"activation_{index}", list(SCREEN_ACTIVATIONS))
    hp.Float("learning_rate", *SCREEN_RATE_RANGE, sampling="log")
    hp.Float("weight_decay", *SCREEN_DECAY_RANGE, sampling="log")
    hp.Choice("batch_size", list(SCREEN_BATCH_SIZES))
    hp.Fixed("epochs", epochs)
    return hp


def architecture(values: dict) -> dict:
    """The architecture hyperparameters of a trial's values (active layers only)."""
    depth = values["depth"]
    names = ["depth"] + [f"{kind}_{index}" for index in range(1, depth + 1)
                         for kind in ("units", "activation")]
    return {name: values[name] for name in names}


def config_values(config: RegressionConfig) -> dict:
    """A configuration as the hyperparameter values of a trial."""
    values = {"depth": len(config.units), "learning_rate": config.learning_rate,
              "weight_decay": config.weight_decay, "batch_size": config.batch_size}
    for index, (units, activation) in enumerate(zip(config.units, config.activations), 1):
        values[f"units_{index}"] = units
        values[f"activation_{index}"] = activation
    return values


def config_from_values(config: RegressionConfig, values: dict) -> RegressionConfig:
    """`config` with a trial's architecture, rates and batch size."""
    depth = values["depth"]
    return dataclasses.replace(
        config,
        units=tuple(values[f"units_{index}"] for index in range(1, depth + 1)),
        activations=tuple(values[f"activation_{index}"] for index in range(1, depth + 1)),
        learning_rate=float(values["learning_rate"]),
        weight_decay=float(values["weight_decay"]),
        batch_size=int(values["batch_size"]),
    )


def grid_values(center: dict, homework: bool, refine: bool = True) -> dict[str, list]:
    """Stage 2's grid: the homework's, or rates and decays around `center`.

    Args:
        center: The values to centre on (the screen's winner); its batch size
            is kept.
        homework: Return the homework's grid instead.
        refine: Vary the rate and decay by `GRID_FACTORS`; False: `center`'s only.
    """
    if homework:
        return {name: list(values) for name, values in HOMEWORK_GRID.items()}
    factors = GRID_FACTORS if refine else (1.0,)

    def around(value):
        return sorted({float(f"{value * factor:.3g}") for factor in factors})

    return {
        "learning_rate": around(center["learning_rate"]),
        "weight_decay": around(center["weight_decay"]),
        "batch_size": [int(center["batch_size"])],
    }


def _log_ratio(value: float, reference: float) -> float:
    """|log(value / reference)|, with 0 against 0 the same and 0 against more far."""
    if value == reference:
        return 0.0
    if value <= 0 or reference <= 0:
        return ARCHITECTURE_DISTANCE / 10
    return abs(math.log(value / reference))


def distance(values: dict, base: dict) -> float:
    """How far a configuration's values are from `base`'s (0: the same recipe).

    Another architecture counts `ARCHITECTURE_DISTANCE`; rates, decay and
    batch size add how many e-fold they differ.
    """
    far = 0.0 if architecture(values) == architecture(base) else ARCHITECTURE_DISTANCE
    return far + sum(_log_ratio(float(values[name]), float(base[name]))
                     for name in RECIPE_NAMES)


def grid_space(center: dict, grid: dict[str, list], epochs: int) -> keras_tuner.HyperParameters:
    """Stage 2's space: `center`'s architecture fixed, `grid`'s values to visit.

    Raises:
        InputError: a hyperparameter of the grid has no values.
    """
    hp = keras_tuner.HyperParameters()
    for name, values in architecture(center).items():
        hp.Fixed(name, values)
    for name, values in grid.items():
        if not values:
            raise InputError(f"the grid has no values for {name}; give at least one")
        hp.Choice(name, list(values))
    hp.Fixed("epochs", epochs)
    return hp


def architecture_label(values: dict) -> str:
    """A configuration's hidden layers, e.g. "units 16,64 selu,sigmoid"."""
    depth = values["depth"]
    units = ",".join(str(values[f"units_{i}"]) for i in range(1, depth + 1))
    activations = ",".join(values[f"activation_{i}"] for i in range(1, depth + 1))
    return f"units {units} {activations}"


def grid_label(values: dict) -> str:
    """A configuration's rates and batch size."""
    return (f"lr {values['learning_rate']:.3g}  wd {values['weight_decay']:.3g}  "
            f"batch {values['batch_size']}")


def describe(values: dict) -> str:
    """A configuration in one short line."""
    return f"{architecture_label(values)}  {grid_label(values)}"
