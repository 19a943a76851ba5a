"""MNIST pictures: first-layer filters, activation maps, confusion, mistakes."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from hw1_keras.plots import plt, save


def _grid(count: int, columns: int = 8):
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.1 + 0.4),
                                squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    return figure, axes.ravel()


def filters(model: keras.Model, path: str | Path) -> Path:
    """The first convolution's 3x3 kernels, one tile each (fig. 10a)."""
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernels = np.asarray(conv.kernel)[:, :, 0, :]  # (3, 3, filters): one input channel.
    figure, axes = _grid(kernels.shape[-1])
    limit = np.abs(kernels).max()
    for index in range(kernels.shape[-1]):
        axes[index].imshow(kernels[:, :, index], cmap="coolwarm", vmin=-limit, vmax=limit)
        axes[index].set_title(str(index), fontsize=7)
    figure.suptitle(f"{conv.name}: {kernels.shape[-1]} filters (blue < 0 < red)")
    return save(figure, path)


def activations(model: keras.Model, image: np.ndarray, path: str | Path,
                maps_per_layer: int = 32) -> Path:
    """Each conv block's activation maps (after ReLU) for one image (fig. 10b)."""
    relus = [layer for layer in model.layers  # Conv blocks' ReLUs: 4-D maps, not dense units.
             if isinstance(layer, keras.layers.ReLU) and len(layer.output.shape) == 4]
    probe = keras.Model(model.input, [layer.output for layer in relus])
    outputs = probe(image[np.newaxis, ..., np.newaxis].astype("float32"), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    columns = 8
    rows_per_layer = math.ceil(maps_per_layer / columns)
    figure, axes = plt.subplots(1 + rows_per_layer * len(relus), columns,
                                figsize=(columns * 1.1, (1 + rows_per_layer * len(relus)) * 1.15))
    for axis in axes.ravel():
        axis.axis("off")
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title("input", fontsize=7)
    for layer_index, (layer, output) in enumerate(zip(relus, outputs)):
        maps = np.asarray(output)[0]
        for index in range(min(maps_per_layer, maps.shape[-1])):
            row = 1 + layer_index * rows_per_layer + index // columns
            axis = axes[row, index % columns]
            axis.imshow(maps[:, :, index], cmap="viridis")
            if index == 0:
                axis.set_title(f"{layer.name} {maps.shape[0]}x{maps.shape[1]}", fontsize=7,
                               loc="left")
    figure.suptitle("Activation maps")
    return save(figure, path)


def confusion(matrix: np.ndarray, path: str | Path) -> Path:
    """The test confusion matrix, counts annotated, diagonal hidden in the colours."""
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    image = axis.imshow(off_diagonal, cmap="Reds")
    for true in range(10):
        for predicted in range(10):
            count = matrix[true, predicted]
            if count:
                axis.text(predicted, true, str(count), ha="center", va="center", fontsize=7,
                          color="black" if true != predicted else "navy")
    axis.set_xticks(range(10))
    axis.set_yticks(range(10))
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("Test confusion matrix (colour: errors only)")
    figure.colorbar(image, ax=axis, fraction=0.046)
    return save(figure, path)


def mistakes(images: np.ndarray, true: np.ndarray, predicted: np.ndarray,
             confidence: np.ndarray, path: str | Path, limit: int = 40) -> Path:
    """Misclassified test digits with true and predicted labels."""
    wrong = np.flatnonzero(true != predicted)[:limit]
    figure, axes = _grid(max(1, len(wrong)))
    for axis, index in zip(axes, wrong):
        axis.imshow(images[index], cmap="gray")
        axis.set_title(f"{true[index]}→{predicted[index]} ({confidence[index]:.0%})", fontsize=7)
    figure.suptitle(f"Misclassified test digits (true→predicted), {len(wrong)} shown"
                    f" of {int((true != predicted).sum())}")
    return save(figure, path)
