"""MNIST loading, validation and the seeded stratified train/validation split."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import zipfile
from pathlib import Path

import numpy as np

from hw1_keras.config import require_regular_file
from hw1_keras.errors import InputError
from hw1_keras.mnist.config import CLASSES, IMAGE_SIDE

KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE)
EXPECTED = "a .npz in keras.datasets.mnist layout"  # What messages ask for instead.


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
                f"could not download MNIST ({_cause(error)}); pass --data PATH.npz, "
                "a local copy in the layout keras.datasets.mnist.load_data() returns"
            ) from None
    return _read_npz(Path(path))


def _cause(error: BaseException, limit: int = 100) -> str:
    """The last words of a download's error, on one short line.

    Keras says `URL fetch failure on <url>: None -- [Errno -3] Temporary
    failure in name resolution`; the reason is at the end.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    reason = text.rsplit(" -- ", 1)[-1]
    return reason if len(reason) <= limit else "..." + reason[-(limit - 3):]


def check_file(path: str | None, validation_size: int | None) -> None:
    """Validates a `--data` file as `load` would, without reading its images.

    The arrays' shapes and dtypes come from their headers and the labels are
    read (a few hundred KB), so a bad file is refused in well under a second,
    before the CLI imports TensorFlow. None (Keras' download) passes.

    Args:
        path: The file, or None.
        validation_size: The images to hold out of its training set, or None
            to leave that to the caller.

    Raises:
        InputError: As `load`, one line naming the file and the problem.
    """
    if path is None:
        return
    path = Path(path)
    with _open_npz(path) as archive:
        labels = _checked_labels(path, archive)
    if validation_size is not None:
        stratified_split_size(len(labels["train"]), validation_size)


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """The archive, once it is known to be an .npz holding every key (not loaded)."""
    require_regular_file(path, f"--data {path}", EXPECTED)
    if path.is_dir():
        raise InputError(f"--data {path}: is a folder, not a file; pass {EXPECTED}")
    if not path.is_file():
        raise InputError(f"--data {path}: no such file; pass {EXPECTED}")
    try:
        with open(path, "rb") as handle:
            start = handle.read(6)
    except OSError as error:
        raise InputError(f"--data {path}: cannot be read ({error.strerror})") from None
    if not start.startswith((b"PK", b"\x93NUMPY")):  # A zip archive (.npz) or a .npy.
        raise InputError(f"--data {path}: not an .npz file (not a zip archive of "
                         f"arrays); pass {EXPECTED}")
    with _readable(path):
        # A lone .npy is mapped, not read: only its shape is reported.
        loaded = np.load(path, allow_pickle=False, mmap_mode="r")
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # A lone .npy array.
        raise InputError(
            f"--data {path}: a single {loaded.dtype} array of shape {loaded.shape}, not "
            f"an .npz archive; pass a .npz holding {', '.join(KEYS)}")
    missing = [key for key in KEYS if key not in loaded.files]
    if missing:
        loaded.close()
        raise InputError(
            f"--data {path}: missing arrays {', '.join(missing)}; expected "
            f"{', '.join(KEYS)} as keras.datasets.mnist.load_data() returns"
        )
    return loaded


@contextlib.contextmanager
def _readable(path: Path):
    """Turns what NumPy and zipfile raise for a damaged archive into one `InputError`."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if "allow_pickle" in str(error):  # Never loaded: unpickling runs arbitrary code.
            raise InputError(f"--data {path}: holds object (pickled) arrays, which are "
                             "not loaded for safety; save plain uint8/integer arrays") from None
        raise InputError(f"--data {path}: not a readable .npz file ({error})") from None


def _header(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> tuple[tuple, np.dtype]:
    """The shape and dtype of `key`, from its .npy header alone.

    Raises:
        InputError: No .npy header, an object array, or less (or more) data
            in the archive than the header promises (a file cut short).
    """
    names = archive.zip.namelist()
    name = f"{key}.npy" if f"{key}.npy" in names else key  # NumPy reads either.
    with _readable(path), archive.zip.open(name) as member:
        version = np.lib.format.read_magic(member)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(member)
        header = member.tell()
    if dtype.hasobject:
        raise InputError(f"--data {path}: holds object (pickled) arrays, which are "
                         "not loaded for safety; save plain uint8/integer arrays")
    stored = archive.zip.getinfo(name).file_size - header
    promised = math.prod(shape) * dtype.itemsize
    if stored != promised:
        raise InputError(f"--data {path}: {key} is damaged (its header promises "
                         f"{promised:,} bytes of data, the archive holds {stored:,}); save "
                         "the file again")
    return shape, dtype


def _checked_labels(path: Path, archive: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    """Every check but the images' pixels; the labels of each split by split name."""
    labels = {}
    for split in ("train", "test"):
        image_shape, image_dtype = _header(path, archive, f"x_{split}")
        label_shape, label_dtype = _header(path, archive, f"y_{split}")
        _check_shapes(path, split, image_shape, image_dtype, label_shape, label_dtype)
        with _readable(path):
            labels[split] = archive[f"y_{split}"]
        _check_labels(path, split, labels[split])
    return labels


def _read_npz(path: Path):
    with _open_npz(path) as archive:
        labels = _checked_labels(path, archive)
        with _readable(path):
            images = {split: archive[f"x_{split}"] for split in labels}
    return (images["train"], labels["train"]), (images["test"], labels["test"])


def _check_shapes(path: Path, split: str, image_shape: tuple, image_dtype: np.dtype,
                  label_shape: tuple, label_dtype: np.dtype) -> None:
    """Pure: the images are uint8 (N >= 1, 28, 28), the labels N integers."""
    if image_dtype != np.uint8 or len(image_shape) != 3 or image_shape[1:] != IMAGE_SHAPE:
        raise InputError(
            f"--data {path}: x_{split} is {image_dtype} {image_shape}; "
            "expected uint8 of shape (N, 28, 28)"
        )
    count = image_shape[0]
    if count == 0:
        raise InputError(f"--data {path}: x_{split} holds no images; expected at least one")
    if (len(label_shape) != 1 or label_shape[0] != count
            or not np.issubdtype(label_dtype, np.integer)):
        raise InputError(
            f"--data {path}: y_{split} is {label_dtype} {label_shape}; expected "
            f"integers of shape ({count},), one label per image"
        )


def _check_labels(path: Path, split: str, labels: np.ndarray) -> None:
    if labels.min() < 0 or labels.max() >= CLASSES:
        bad = int(np.flatnonzero((labels < 0) | (labels >= CLASSES))[0])
        raise InputError(
            f"--data {path}: y_{split}[{bad}] is {labels[bad]}; labels must be 0-9"
        )


def stratified_split_size(count: int, validation_size: int) -> None:
    """Raises `InputError` unless `validation_size` leaves training images of `count`."""
    if not 0 < validation_size < count:
        raise InputError(
            f"--validation-size got {validation_size}; expected between 1 and "
            f"{count - 1} for {count} training images"
        )


def stratified_split(labels: np.ndarray, validation_size: int, seed: int):
    """Indices `(train, validation)`, each class held out in proportion, seeded.

    Raises:
        InputError: `validation_size` leaves no training data.
    """
    count = len(labels)
    stratified_split_size(count, validation_size)
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
