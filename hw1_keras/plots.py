"""Plotting helpers every task shares; each writes one PNG and closes its figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # Headless: runs write PNGs, they never open windows.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 120


def save(figure, path: str | Path) -> Path:
    """Saves and closes a figure."""
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return Path(path)


def learning_curves(
    epochs: Sequence[float],
    series: dict[str, Sequence[float]],
    path: str | Path,
    *,
    ylabel: str,
    title: str,
    log_y: bool = False,
    marker: str | None = None,
) -> Path:
    """Plots one line per named series against the epoch number.

    Args:
        epochs: The x coordinates (real epochs, not Keras epochs).
        series: Label -> values, one value per epoch entry.
        path: The PNG to write.
        ylabel: The y axis label.
        title: The figure title.
        log_y: Use a log scale for the y axis (losses spanning decades).
        marker: A Matplotlib marker for each point (for curves of few epochs).
    """
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, values in series.items():
        axes.plot(epochs, values, label=label, marker=marker)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    if log_y:
        axes.set_yscale("log")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return save(figure, path)


def weight_histograms(model, path: str | Path, bins: int = 40) -> Path:
    """One histogram per layer of its kernel and bias values (fig. 2b style)."""
    weighted = [layer for layer in model.layers if layer.weights]
    figure, axes = plt.subplots(1, len(weighted), figsize=(4 * len(weighted), 3.5),
                                squeeze=False)
    for axis, layer in zip(axes[0], weighted):
        for variable in layer.weights:
            values = np.asarray(variable, dtype=np.float64).ravel()  # float32 bins can collapse.
            axis.hist(values, bins=bins, alpha=0.7,
                      label=f"{variable.name} ({values.size})")
        axis.set_title(layer.name)
        axis.set_xlabel("value")
        axis.legend(fontsize="small")
    axes[0][0].set_ylabel("count")
    return save(figure, path)


def activation_function(name: str, path: str | Path, x_range=(-5.0, 5.0)) -> Path:
    """Plots a Keras activation function and its derivative (fig. 1 style)."""
    import keras  # Imported here: only this plot needs the backend.
    import tensorflow as tf

    x = tf.constant(np.linspace(*x_range, 401), dtype=tf.float32)
    function = keras.activations.get(name)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    slope = tape.gradient(y, x)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(x.numpy(), y.numpy(), label=name)
    axes.plot(x.numpy(), slope.numpy(), "--", label=f"d {name}/dx")
    axes.axhline(0, color="gray", lw=0.5)
    axes.axvline(0, color="gray", lw=0.5)
    axes.set_xlabel("x")
    axes.set_title(f"The {name} activation")
    axes.grid(alpha=0.3)
    axes.legend()
    return save(figure, path)
