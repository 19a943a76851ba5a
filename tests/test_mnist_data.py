"""MNIST loading, validation and the stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.errors import InputError
from hw1_keras.mnist import data as mnist_data


def _arrays(train=60, test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(train) % 10,
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(test) % 10,
    }


def _save(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def test_reads_a_valid_file(tmp_path):
    arrays = _arrays()
    (x_train, y_train), (x_test, y_test) = mnist_data.load_arrays(_save(tmp_path, **arrays))
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "missing arrays y_test"),
        (lambda a: a.update(x_train=a["x_train"][:, :27]), "expected uint8 of shape (N, 28, 28)"),
        (lambda a: a.update(x_test=a["x_test"].astype(np.float32)), "x_test is float32"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), "one label per image"),
        (lambda a: a.update(y_train=np.where(np.arange(60) == 7, 12, a["y_train"])),
         "y_train[7] is 12; labels must be 0-9"),
        (lambda a: a.update(y_test=a["y_test"] - 1), "labels must be 0-9"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.float32)), "expected integers"),
        (lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]),
         "x_test holds no images"),
    ],
)
def test_bad_files_are_rejected_in_one_line(tmp_path, change, message):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(InputError) as error:
        mnist_data.load_arrays(_save(tmp_path, **arrays))
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert "data.npz" in str(error.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        mnist_data.load_arrays(str(tmp_path / "nothing.npz"))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(InputError) as error:  # Not numpy's advice to unpickle it.
        mnist_data.load_arrays(str(garbage))
    assert str(error.value) == (f"--data {garbage}: not an .npz file (not a zip archive of "
                                "arrays); pass a .npz in keras.datasets.mnist layout")
    torn = tmp_path / "torn.npz"
    np.savez(torn, **_arrays())
    torn.write_bytes(torn.read_bytes()[:300])
    with pytest.raises(InputError, match="not a readable .npz"):
        mnist_data.load_arrays(str(torn))


def test_a_folder_is_reported_as_a_folder_not_a_missing_file(tmp_path):
    with pytest.raises(InputError) as error:
        mnist_data.load_arrays(str(tmp_path))
    assert str(error.value) == (f"--data {tmp_path}: is a folder, not a file; pass a .npz in "
                                "keras.datasets.mnist layout")


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{**_arrays(), "y_train": np.array([object()] * 60)})
    with pytest.raises(InputError) as error:
        mnist_data.load_arrays(str(path))
    assert "holds object (pickled) arrays, which are not loaded for safety" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_single_npy_array_is_not_taken_for_an_archive(tmp_path):
    path = tmp_path / "x_train.npy"
    np.save(path, _arrays()["x_train"])
    with pytest.raises(InputError) as error:
        mnist_data.load_arrays(str(path))
    assert "a single uint8 array of shape (60, 28, 28), not an .npz" in str(error.value)
    assert "\n" not in str(error.value)


def test_split_is_stratified_sized_and_seeded():
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    train, validation = mnist_data.stratified_split(labels, 190, seed=3)
    assert len(validation) == 190 and len(train) == len(labels) - 190
    assert not set(train) & set(validation)
    expected = np.bincount(labels) * 190 / len(labels)
    assert np.all(np.abs(np.bincount(labels[validation], minlength=10) - expected) <= 1)
    again = mnist_data.stratified_split(labels, 190, seed=3)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(validation, again[1])
    other = mnist_data.stratified_split(labels, 190, seed=4)
    assert not np.array_equal(validation, other[1])


def test_split_rejects_impossible_sizes():
    with pytest.raises(InputError, match="--validation-size got 100"):
        mnist_data.stratified_split(np.arange(100) % 10, 100, seed=0)


def test_load_gives_the_homework_split_sizes(mnist_file):
    data = mnist_data.load(mnist_file, 12_000, seed=0)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (48_000, 12_000, 10_000)
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.y_test),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


@pytest.mark.parametrize("error, reason", [
    (Exception("URL fetch failure on https://example.org/mnist.npz: None -- [Errno -3] "
               "Temporary failure in name resolution"),
     "([Errno -3] Temporary failure in name resolution)"),
    (OSError(), "(OSError)"),
    (Exception("x" * 300), "(..." + "x" * 97 + ")"),
])
def test_a_failed_download_says_why_in_one_line(monkeypatch, error, reason):
    import keras

    def fail():
        raise error

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    with pytest.raises(InputError) as raised:
        mnist_data.load_arrays(None)
    message = str(raised.value)
    assert f"could not download MNIST {reason}; pass --data PATH.npz" in message
    assert "\n" not in message
