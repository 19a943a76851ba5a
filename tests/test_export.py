"""SavedModel export: a fresh process serves exactly what the Keras model predicts."""

from __future__ import annotations

import gc
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from hw1_keras.errors import InputError
from hw1_keras.export import ENDPOINT, export_saved_model, load_endpoint
from hw1_keras.regression.model import build_model

SIGNATURE = [tf.TensorSpec((None, 1), tf.float32, name="x")]

SERVE_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf

model_dir, run_model_dir, inputs, out = sys.argv[1:5]
x = np.load(inputs)
loaded = tf.saved_model.load(model_dir)  # keep a reference: it owns the variables
first = loaded.serve(tf.constant(x)).numpy()
second = loaded.serve(tf.constant(x)).numpy()
single = np.concatenate([loaded.serve(tf.constant(x[i:i + 1])).numpy() for i in range(3)])
run_loaded = tf.saved_model.load(run_model_dir)
train = np.loadtxt(sys.argv[5], delimiter=",", skiprows=1, dtype=np.float32)
run_prediction = run_loaded.serve(tf.constant(train[:, :1])).numpy()
np.savez(out, first=first, second=second, single=single,
         run_train_mse=np.mean((run_prediction - train[:, 1:]) ** 2))
"""


def make_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_model()
    # Non-zero biases, so a model exported without its variables would show.
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.random.default_rng(seed).normal(size=layer.bias.shape)
                              .astype(np.float32))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = make_model(3)
    path = export_saved_model(model, tmp_path_factory.mktemp("export") / "saved_model",
                              SIGNATURE)
    return model, path


@pytest.fixture(scope="module")
def inputs():
    return np.linspace(-6, 6, 41, dtype=np.float32).reshape(-1, 1)


def test_export_writes_a_savedmodel_and_no_leftovers(exported):
    _, path = exported
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables").is_dir()
    siblings = {p.name for p in path.parent.iterdir()}
    assert siblings == {"saved_model"}, siblings


def test_fresh_process_serves_model_predictions(exported, inputs, tmp_path, tiny_run,
                                                repo_root):
    model, path = exported
    run_dir, metrics = tiny_run
    np.save(tmp_path / "x.npy", inputs)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(path), str(run_dir / "saved_model"),
         str(tmp_path / "x.npy"), str(tmp_path / "out.npz"), str(run_dir / "train_data.csv")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = model.predict(inputs, verbose=0)
    assert out["first"].shape == (41, 1)
    np.testing.assert_allclose(out["first"], expected, atol=1e-5)
    # Serving is deterministic and independent of the batch it is in.
    np.testing.assert_array_equal(out["first"], out["second"])
    np.testing.assert_allclose(out["single"], expected[:3], atol=1e-5)
    # The run's exported model is the trained one: it reproduces the run's train MSE.
    assert float(out["run_train_mse"]) == pytest.approx(metrics["train_mse"], rel=1e-4)


def test_endpoint_signature(exported):
    _, path = exported
    loaded = tf.saved_model.load(str(path))
    serve = getattr(loaded, ENDPOINT)
    specs = [concrete.structured_input_signature[0][0]
             for concrete in serve.concrete_functions]
    assert [spec.shape.as_list() for spec in specs] == [[None, 1]]
    assert specs[0].dtype == tf.float32


def test_load_endpoint_serves_in_process(exported, inputs):
    model, path = exported
    serve = load_endpoint(path)
    gc.collect()  # The endpoint must keep the loaded variables alive on its own.
    np.testing.assert_allclose(serve(tf.constant(inputs)).numpy(),
                               model.predict(inputs, verbose=0), atol=1e-5)


def test_re_export_replaces_the_model(tmp_path, inputs):
    path = tmp_path / "saved_model"
    export_saved_model(make_model(4), path, SIGNATURE)
    newer = make_model(5)
    export_saved_model(newer, path, SIGNATURE)
    assert {p.name for p in tmp_path.iterdir()} == {"saved_model"}
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(loaded.serve(tf.constant(inputs)).numpy(),
                               newer.predict(inputs, verbose=0), atol=1e-5)


def test_an_export_interrupted_between_its_renames_does_not_block_the_next(tmp_path, inputs):
    path = tmp_path / "saved_model"
    export_saved_model(make_model(4), path, SIGNATURE)
    # A kill after the new model moved in but before the old one was deleted.
    (tmp_path / "saved_model.old").mkdir()
    (tmp_path / "saved_model.old" / "saved_model.pb").write_bytes(b"stale")
    model = make_model(5)
    export_saved_model(model, path, SIGNATURE)
    assert {p.name for p in tmp_path.iterdir()} == {"saved_model"}
    np.testing.assert_allclose(load_endpoint(path)(tf.constant(inputs)).numpy(),
                               model.predict(inputs, verbose=0), atol=1e-5)


def test_a_kill_between_the_renames_is_explained_to_predict(tmp_path, inputs):
    path = tmp_path / "saved_model"
    export_saved_model(make_model(4), path, SIGNATURE)
    path.rename(tmp_path / "saved_model.old")  # The old one moved out, the new one not in.
    with pytest.raises(InputError) as caught:
        load_endpoint(path)
    message = str(caught.value)
    assert "stopped while replacing its export; rerun the run's command" in message
    assert f"--model {tmp_path / 'saved_model.old'}" in message and "\n" not in message


def test_load_endpoint_rejects_a_damaged_savedmodel_in_one_line(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(InputError) as caught:
        load_endpoint(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"--model {tmp_path}: not a readable SavedModel")
    assert "\n" not in message


def test_load_endpoint_rejects_a_folder_without_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(InputError) as caught:
            load_endpoint(path)
        message = str(caught.value)
        assert message.startswith(f"--model {path}:") and "saved_model.pb" in message


def test_load_endpoint_rejects_a_savedmodel_without_serve(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "other"))
    with pytest.raises(InputError, match="no 'serve' endpoint"):
        load_endpoint(tmp_path / "other")
