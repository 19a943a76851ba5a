"""MNIST loading, validation and the seeded stratified train/validation split."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from hw1_keras.errors import InputError

KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28)
CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Mnist:
    """The three splits: images uint8 (N, 28, 28), labels int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_arrays(path: str | None):
    """`((x_train, y_train), (x_test, y_test))` from a local .npz, or Keras' download.

    Raises:
        InputError: the file is missing or malformed, or the download failed.
    """
    if path is None:
        import keras

        try:
            return keras.datasets.mnist.load_data()
        except Exception as error:  # Any network or cache failure means the same.
            raise InputError(
                f"could not download MNIST ({type(error).__name__}); pass --data PATH.npz, "
                "a local copy in the layout keras.datasets.mnist.load_data() returns"
            ) from None
    return _read_npz(Path(path))


def _read_npz(path: Path):
    if path.is_dir():
        raise InputError(f"--data {path}: is a folder, not a file; pass a .npz in "
                         "keras.datasets.mnist layout")
    if not path.is_file():
        raise InputError(f"--data {path}: no such file; pass a .npz in keras.datasets.mnist layout")
    with open(path, "rb") as handle:
        start = handle.read(6)
    if not start.startswith((b"PK", b"\x93NUMPY")):  # A zip archive (.npz) or a .npy.
        raise InputError(f"--data {path}: not an .npz file (not a zip archive of "
                         "arrays); pass a .npz in keras.datasets.mnist layout")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # A lone .npy array.
            raise InputError(
                f"--data {path}: a single {loaded.dtype} array of shape {loaded.shape}, not "
                f"an .npz archive; pass a .npz holding {', '.join(KEYS)}")
        with loaded as archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise InputError(
                    f"--data {path}: missing arrays {', '.join(missing)}; expected "
                    f"{', '.join(KEYS)} as keras.datasets.mnist.load_data() returns"
                )
            arrays = {key: archive[key] for key in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, InputError):
            raise
        if "allow_pickle" in str(error):  # Never loaded: unpickling runs arbitrary code.
            raise InputError(f"--data {path}: holds object (pickled) arrays, which are not "
                             "loaded for safety; save plain uint8/integer arrays") from None
        raise InputError(f"--data {path}: not a readable .npz file ({error})") from None
    for split in ("train", "test"):
        _check_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _check_split(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if len(images) == 0:
        raise InputError(f"--data {path}: x_{split} holds no images; expected at least one")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise InputError(
            f"--data {path}: x_{split} is {images.dtype} {images.shape}; "
            "expected uint8 of shape (N, 28, 28)"
        )
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"--data {path}: y_{split} is {labels.dtype} {labels.shape}; expected "
            f"integers of shape ({len(images)},), one label per image"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= CLASSES):
        bad = int(np.flatnonzero((labels < 0) | (labels >= CLASSES))[0])
        raise InputError(
            f"--data {path}: y_{split}[{bad}] is {labels[bad]}; labels must be 0-9"
        )


def stratified_split(labels: np.ndarray, validation_size: int, seed: int):
    """Indices `(train, validation)`, each class held out in proportion, seeded.

    Raises:
        InputError: `validation_size` leaves no training data.
    """
    count = len(labels)
    if not 0 < validation_size < count:
        raise InputError(
            f"--validation-size got {validation_size}; expected between 1 and "
            f"{count - 1} for {count} training images"
        )
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    # Largest-remainder rounding, so the per-class counts add up exactly.
    exact = sizes * validation_size / count
    take = np.floor(exact).astype(int)
    take[np.argsort(exact - take)[::-1][: validation_size - take.sum()]] += 1
    validation = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, take)
    ])
    validation = np.sort(validation)
    train = np.setdiff1d(np.arange(count), validation)
    return rng.permutation(train), validation


def load(path: str | None, validation_size: int, seed: int) -> Mnist:
    """Loads MNIST and splits the official training set into train/validation."""
    (x_train, y_train), (x_test, y_test) = load_arrays(path)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    train, validation = stratified_split(y_train, validation_size, seed)
    return Mnist(x_train[train], y_train[train], x_train[validation], y_train[validation],
                 x_test, y_test)
