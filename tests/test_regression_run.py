"""`hw1_keras.regression.train.run`: one run folder with metrics, plots and a model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hw1_keras.config import to_dict
from hw1_keras.devices import DeviceConfig
from hw1_keras.errors import InputError
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.train import evaluate, find_gaps, run, train_model

# For runs of a few epochs: XLA's compile would cost more than it saves.
NO_XLA = DeviceConfig(jit="off")

METRIC_KEYS = {"train_mse", "test_mse", "test_mse_gaps", "test_mse_outside", "parameters",
               "train_seconds", "seed", "config"}
RUN_FILES = {"metrics.json", "fit.png", "weights.png", "loss.png", "selu.png",
             "train_data.csv", "test_data.csv", "config.json"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_run_writes_every_artifact(tiny_run):
    run_dir, _ = tiny_run
    names = {p.name for p in run_dir.iterdir()}
    assert RUN_FILES <= names
    assert "saved_model" in names and (run_dir / "saved_model").is_dir()
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    # No leftovers of the atomic writes.
    assert not [n for n in names if n.endswith((".partial", ".old"))], names
    for png in ("fit.png", "weights.png", "loss.png", "selu.png"):
        content = (run_dir / png).read_bytes()
        assert content.startswith(PNG_MAGIC) and len(content) > 5000, png


def test_metrics_json(tiny_run, tiny_config):
    run_dir, returned = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert returned["run_dir"] == str(run_dir)
    # The returned metrics are what metrics.json holds (tuples written as lists).
    assert json.loads(json.dumps({k: v for k, v in returned.items() if k != "run_dir"})) == metrics
    assert metrics["parameters"] == 1185
    assert metrics["seed"] == tiny_config.seed
    assert metrics["config"] == to_dict(tiny_config)
    assert metrics["optimizer_steps"] == tiny_config.epochs * math.ceil(100 / 50)
    assert metrics["train_seconds"] > 0
    assert metrics["data"] == "embedded"
    assert metrics["gaps"] == [list(gap) for gap in regression_data.GAPS]
    for key in ("train_mse", "test_mse", "test_mse_gaps", "test_mse_outside"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]) and metrics[key] > 0
    # The gap/outside split is a partition of the test points.
    inside = metrics["test_points_in_gaps"]
    assert inside >= 20
    combined = (inside * metrics["test_mse_gaps"]
                + (100 - inside) * metrics["test_mse_outside"]) / 100
    assert combined == pytest.approx(metrics["test_mse"], rel=1e-4)
    assert metrics["test_noise_variance"] == pytest.approx(0.01)


def test_config_and_data_files(tiny_run, tiny_config):
    run_dir, _ = tiny_run
    assert json.loads((run_dir / "config.json").read_text()) == to_dict(tiny_config)
    train, test = regression_data.generate(tiny_config.data_seed)
    saved_train = regression_data.read_csv(run_dir / "train_data.csv")
    saved_test = regression_data.read_csv(run_dir / "test_data.csv")
    np.testing.assert_array_equal(saved_train.x, train.x)
    np.testing.assert_array_equal(saved_train.y, train.y)
    np.testing.assert_array_equal(saved_test.y, test.y)


def test_same_seed_same_result_other_seed_differs(tiny_run, tiny_config, tmp_path):
    _, first = tiny_run
    again = run(tiny_config, str(tmp_path / "again"))
    assert abs(again["test_mse"] - first["test_mse"]) <= 1e-6
    assert abs(again["train_mse"] - first["train_mse"]) <= 1e-6
    # Another seed trains another model (no plots or export needed to see that).
    train, test = regression_data.load(None, None, tiny_config.data_seed)
    other, _, _ = train_model(RegressionConfig(epochs=20, log_every=10, seed=1), train, test,
                              verbose=False)
    other_mse = evaluate(other, train, test, list(regression_data.GAPS))["test_mse"]
    assert abs(other_mse - first["test_mse"]) > 1e-6


@pytest.mark.integration  # A whole command, in this process.
def test_user_csv_data(tmp_path):
    rng = np.random.default_rng(0)
    x_train = np.concatenate([np.linspace(-4, -1, 30), np.linspace(2, 4, 20)])
    x_test = np.linspace(-4, 4, 17)
    for name, x in (("train", x_train), ("test", x_test)):
        split = regression_data.Split(x.reshape(-1, 1).astype(np.float32),
                                      (np.sin(x) + 0.01 * rng.normal(size=x.shape))
                                      .reshape(-1, 1).astype(np.float32))
        regression_data.write_csv(split, tmp_path / f"{name}.csv")
    config = RegressionConfig(epochs=10, log_every=10, units=(8,), activations=("tanh",),
                              train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"))
    metrics = run(config, str(tmp_path / "run"), NO_XLA)
    (gap,) = metrics["gaps"]
    assert gap[0] == pytest.approx(-1.0) and gap[1] == pytest.approx(2.0)
    assert metrics["data"] == {"train": config.train, "test": config.test}
    assert metrics["test_points_in_gaps"] == int(np.sum((x_test > -1) & (x_test < 2)))
    assert metrics["parameters"] == (8 + 8) + (8 + 1)
    assert "test_noise_variance" not in metrics  # no true function for users' data
    run_dir = tmp_path / "run"
    assert (run_dir / "tanh.png").is_file() and (run_dir / "fit.png").is_file()
    assert len(regression_data.read_csv(run_dir / "train_data.csv")) == 50


def test_bad_data_is_rejected_before_the_run_folder_is_made(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("input,label\n1,2\n3,oops\n")
    out = tmp_path / "never"
    with pytest.raises(InputError, match="row 3"):
        run(RegressionConfig(epochs=1, train=str(bad), test=str(bad)), str(out))
    assert not out.exists()


def test_a_diverged_run_says_what_to_try_and_leaves_no_folder(tmp_path):
    x = np.linspace(-1e30, 1e30, 40, dtype=np.float32).reshape(-1, 1)  # Unscaled data.
    huge = tmp_path / "huge.csv"
    regression_data.write_csv(regression_data.Split(x, x), huge)
    out = tmp_path / "never"
    with pytest.raises(InputError) as error:
        run(RegressionConfig(epochs=2, log_every=1, train=str(huge), test=str(huge)), str(out),
            NO_XLA)
    assert "training diverged (loss inf) with --lr 0.0004; try a smaller one, e.g. --lr " \
           "4e-05, and check that the data's values are not huge" in str(error.value)
    assert not out.exists()


def test_out_that_is_a_file_is_an_input_error(tmp_path):
    out = tmp_path / "file.txt"
    out.write_text("keep me")
    with pytest.raises(InputError, match="--out"):
        run(RegressionConfig(epochs=1), str(out))
    assert out.read_text() == "keep me"


def test_find_gaps():
    assert find_gaps(np.linspace(0, 10, 101)) == []
    x = np.concatenate([np.linspace(0, 3, 31), np.linspace(6, 10, 41)])
    (gap,) = find_gaps(x[::-1])  # order does not matter
    assert gap == pytest.approx((3.0, 6.0))
    assert find_gaps(np.array([1.0, 2.0])) == []
    # The embedded training data's two dark intervals are found.
    train, _ = regression_data.generate(2020)
    found = find_gaps(train.x)
    assert len(found) == 2
    for (lo, hi), (true_lo, true_hi) in zip(found, regression_data.GAPS):
        assert lo <= true_lo and hi >= true_hi
