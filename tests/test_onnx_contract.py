"""An MNIST run's model.onnx takes what its SavedModel takes and returns the same probabilities."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hw1_keras.errors import InputError
from hw1_keras.onnx_serving import MNIST, load_onnx, to_onnx_input

# onnxruntime and NumPy only, as the module docstring tells a user: uint8 (N, 28, 28) in.
NUMPY_ONLY = r"""
import sys
import numpy as np
import onnxruntime

model, images_file, out = sys.argv[1:4]
images = np.load(images_file)
session = onnxruntime.InferenceSession(model)
images = np.asarray(images, np.float32).reshape(len(images), 28, 28, 1)
np.save(out, session.run(["probabilities"], {"images": images})[0])
assert "tensorflow" not in sys.modules
"""

# The CLI in a process of its own; says on stderr whether TensorFlow was imported.
CLI_REPORTING_TENSORFLOW = r"""
import sys
from hw1_keras.cli import main
status = main(sys.argv[1:])
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(status)
"""


def _tiny_model(seed: int):
    import keras

    from hw1_keras.mnist.config import MnistConfig
    from hw1_keras.mnist.model import build_model, hyperparameters

    keras.utils.set_random_seed(seed)
    model = build_model(hyperparameters(MnistConfig(filters=(4, 8), dense_units=16)))
    # Spread-out logits, so probabilities differ between digits and a wrong
    # scaling or a missing softmax shows.
    logits = model.get_layer("logits")
    logits.kernel.assign(logits.kernel * 20.0)
    return model


def _export(model, folder):
    from hw1_keras.export import export_onnx, export_saved_model
    from hw1_keras.mnist.model import serving_function

    serve = serving_function(model)
    export_saved_model(model, folder / "saved_model", serve=serve)
    export_onnx(model, folder / "model.onnx", serve, MNIST)
    return folder / "saved_model", folder / "model.onnx"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(saved_model, model.onnx) of one tiny untrained MNIST network."""
    return _export(_tiny_model(0), tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def digits():
    """64 uint8 (28, 28) images: strokes of random brightness on black, as MNIST."""
    rng = np.random.default_rng(0)
    images = np.zeros((64, 28, 28), np.uint8)
    for image in images:
        top, left = rng.integers(2, 14, size=2)
        image[top:top + rng.integers(8, 14), left:left + rng.integers(2, 12)] = rng.integers(
            80, 256)
    return images


@pytest.fixture(scope="module")
def saved_probabilities(exports, digits):
    from hw1_keras.export import load_endpoint

    return load_endpoint(exports[0])(digits).numpy()


def test_onnx_takes_uint8_digits_and_returns_the_savedmodels_probabilities(
        exports, digits, saved_probabilities):
    from_onnx = load_onnx(exports[1])(digits)
    assert from_onnx.shape == (64, 10) and from_onnx.dtype == np.float32
    np.testing.assert_allclose(from_onnx.sum(axis=1), 1.0, atol=1e-6)  # Probabilities.
    assert len(set(from_onnx.argmax(axis=1))) > 1  # Not one answer for everything.
    assert np.max(np.abs(from_onnx - saved_probabilities)) <= 1e-5


def test_float_images_with_a_channel_axis_give_the_same_probabilities(
        exports, digits, saved_probabilities):
    from_onnx = load_onnx(exports[1])(digits[..., np.newaxis].astype(np.float32))
    assert np.max(np.abs(from_onnx - saved_probabilities)) <= 1e-5


@pytest.mark.integration
def test_onnxruntime_and_numpy_alone_serve_it(exports, digits, saved_probabilities, tmp_path):
    np.save(tmp_path / "digits.npy", digits)
    subprocess.run([sys.executable, "-c", NUMPY_ONLY, str(exports[1]),
                    str(tmp_path / "digits.npy"), str(tmp_path / "out.npy")],
                   check=True, timeout=60, capture_output=True, cwd=tmp_path)
    assert np.max(np.abs(np.load(tmp_path / "out.npy") - saved_probabilities)) <= 1e-5


def test_the_export_check_measures_the_difference(exports, digits, tmp_path):
    from hw1_keras.export import onnx_difference

    assert onnx_difference(exports[1], exports[0], digits) <= 1e-5
    # Another network's SavedModel: the check must see it.
    other, _ = _export(_tiny_model(1), tmp_path)
    assert onnx_difference(exports[1], other, digits) > 0.01


def test_the_onnx_file_is_marked_with_its_contract(exports):
    import onnx

    graph = onnx.load(str(exports[1]))
    assert {prop.key: prop.value for prop in graph.metadata_props} == MNIST.metadata
    assert [put.name for put in graph.graph.input] == ["images"]
    assert [put.name for put in graph.graph.output] == ["probabilities"]
    assert not list(exports[1].parent.glob("*.partial"))


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 28), np.float64), "dtype float64"),
    (np.zeros((2, 28, 28, 3), np.uint8), r"shape \(2, 28, 28, 3\)"),
    (np.zeros((2, 784), np.uint8), r"shape \(2, 784\)"),
    (np.zeros((28, 28), np.uint8), r"shape \(28, 28\)"),
])
def test_the_adapter_refuses_what_the_savedmodel_refuses(images, message):
    with pytest.raises(InputError, match=message):
        to_onnx_input(images)


def test_load_onnx_refuses_an_older_logits_export_and_non_models(tmp_path):
    import warnings

    model = _tiny_model(0)
    model(np.zeros((1, 28, 28, 1), np.float32))  # Keras exports only a model once called.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
        model.export(str(tmp_path / "logits.onnx"), format="onnx", verbose=False)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "folder.onnx").mkdir()
    for name, message in [("logits.onnx", "pass the run's saved_model/ folder instead"),
                          ("junk.onnx", "not a readable ONNX model"),
                          ("folder.onnx", "a folder, not an ONNX file"),
                          ("missing.onnx", "no such file")]:
        with pytest.raises(InputError, match=message) as caught:
            load_onnx(tmp_path / name)
        assert str(caught.value).startswith(f"--model {tmp_path / name}: ")
        assert "\n" not in str(caught.value)


def _run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", CLI_REPORTING_TENSORFLOW, *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.integration  # A whole command, in this process.
def test_predict_answers_the_same_from_onnx_without_importing_tensorflow(exports, tmp_path):
    paths = []
    for number, stroke in enumerate([[(50, 20), (50, 100)], [(25, 25), (80, 25), (40, 105)]]):
        page = Image.new("L", (100, 120), 245)
        ImageDraw.Draw(page).line(stroke, fill=15, width=9)
        paths.append(tmp_path / f"digit{number}.png")
        page.save(paths[-1])
    saved = _run_cli("predict", "--model", exports[0], *paths)
    onnx = _run_cli("predict", "--model", exports[1], *paths)
    assert saved.returncode == 0 and onnx.returncode == 0, (saved.stderr, onnx.stderr)
    lines = onnx.stdout.splitlines()
    assert len(lines) == 2 and lines == saved.stdout.splitlines()
    assert onnx.stderr.splitlines() == [
        f"run.py predict: loaded {exports[1]}: MNIST classifier (ONNX), input "
        "(N, 28, 28[, 1]) uint8/float32", "tensorflow imported: False"]
    assert saved.stderr.splitlines() == [
        f"run.py predict: loaded {exports[0]}: MNIST classifier (SavedModel), input "
        "(N, 28, 28[, 1]) uint8/float32", "tensorflow imported: True"]
