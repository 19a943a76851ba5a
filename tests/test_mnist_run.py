"""A whole MNIST run on a small slice: artifacts, export round trips, resume, predict."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import in_this_process, run_cli
from hw1_keras.mnist.config import MnistConfig

# Small and fast: conftest's 1,200-image slice, a 64-unit dense layer, 2 epochs.
SMALL = {"validation_size": 200, "dense_units": 64, "epochs": 2}
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # For the runs started here.


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, small_npz):
    from hw1_keras.mnist.train import run

    run_dir = tmp_path_factory.mktemp("mnist-run") / "run"
    metrics = run(MnistConfig(data=small_npz, **SMALL), str(run_dir))
    return run_dir, metrics


def test_a_run_writes_every_artifact(small_run):
    run_dir, metrics = small_run
    for name in ("metrics.json", "config.json", "accuracy.png", "filters.png",
                 "activations.png", "confusion.png", "mistakes.png", "model.onnx",
                 "saved_model/saved_model.pb", "training_log.csv", "best.weights.h5"):
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    saved = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "per_class_accuracy", "parameters",
                "train_seconds", "epochs", "config"):
        assert key in saved
    assert saved["epochs"] == 2 and len(saved["per_class_accuracy"]) == 10
    assert saved["config"]["dense_units"] == 64
    # Two epochs on 1,000 images are far from converged but far above chance.
    assert saved["test_accuracy"] > 0.5
    assert saved["onnx_max_abs_diff"] <= 1e-5 and saved["onnx_check_images"] == 300  # All.
    assert not (run_dir / "backup").exists()  # Removed once training finished.


FRESH_PROCESS_CHECK = """
import sys, numpy as np, tensorflow as tf, onnxruntime
run_dir, images_file = sys.argv[1], sys.argv[2]
images = np.load(images_file)
loaded = tf.saved_model.load(run_dir + "/saved_model")  # Keep it: it owns the variables.
serve = loaded.serve
outputs = [serve(images).numpy(), serve(images[..., None]).numpy(),
           serve(images.astype(np.float32)).numpy(),
           serve(images[..., None].astype(np.float32)).numpy(), serve(images).numpy()]
session = onnxruntime.InferenceSession(run_dir + "/model.onnx")
name = session.get_inputs()[0].name
logits = session.run(None, {name: images[..., None].astype(np.float32)})[0]
np.savez(images_file + ".out.npz", saved=np.stack(outputs), onnx=logits)
"""


# The checkpoint holds the trained optimizer's state; the model rebuilt here
# only predicts, so Keras' note that it skips those variables is expected.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_exports_match_keras_in_a_fresh_process(small_run, small_npz, tmp_path):
    import keras
    from hw1_keras.mnist.model import SparseSmoothedCrossEntropy  # noqa: F401
    from hw1_keras.mnist.train import BEST

    run_dir, _ = small_run
    with np.load(small_npz) as archive:
        images = archive["x_test"][:32]
    images_file = tmp_path / "images.npy"
    np.save(images_file, images)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", FRESH_PROCESS_CHECK, str(run_dir), str(images_file)],
                   check=True, env=env, timeout=120, capture_output=True)
    result = np.load(str(images_file) + ".out.npz")

    from hw1_keras.mnist.model import build_model, hyperparameters
    config = MnistConfig(data=small_npz, **SMALL)
    model = build_model(hyperparameters(config))
    model.load_weights(run_dir / BEST)
    logits = np.asarray(model(images[..., None].astype(np.float32), training=False))
    probabilities = np.asarray(keras.ops.softmax(logits))
    for output in result["saved"]:  # uint8/float, (N,28,28)/(N,28,28,1), and a repeat.
        np.testing.assert_allclose(output, probabilities, atol=1e-5)
    np.testing.assert_array_equal(result["saved"][0], result["saved"][-1])
    assert np.max(np.abs(result["onnx"] - probabilities)) <= 1e-5  # ONNX serves them too.


def test_predict_answers_good_images_and_names_bad_ones(small_run, small_npz, tmp_path):
    run_dir, _ = small_run
    with np.load(small_npz) as archive:
        digit = archive["x_test"][0]
    good = tmp_path / "digit.png"
    Image.fromarray(255 - digit).resize((112, 112)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    result = in_this_process("predict", "--model", run_dir / "saved_model", good, bad)
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{good}: ")
    assert re.fullmatch(r"[0-9] \([0-9.]+%(, unsure)?\)", lines[0].split(": ")[1]), lines[0]
    loaded, *errors = result.stderr.strip().splitlines()
    assert loaded.startswith(f"run.py predict: loaded {run_dir / 'saved_model'}: MNIST")
    assert len(errors) == 1 and str(bad) in errors[0] and "Traceback" not in result.stderr
    assert errors[0].startswith(f"run.py predict: error: {bad}: ")


def test_bench_photos_prints_each_light_beside_the_digits_as_they_are(small_run, small_npz,
                                                                      monkeypatch, capsys):
    import argparse

    from benchmarks import photos as bench_photos
    from hw1_keras.export import load_endpoint

    run_dir, _ = small_run
    monkeypatch.setattr(bench_photos, "IMAGES", 40)
    args = argparse.Namespace(data=small_npz, model=str(run_dir / "saved_model"))
    results = bench_photos.main(args)
    with np.load(small_npz) as archive:
        digits, labels = archive["x_test"][:40], archive["y_test"][:40]
    serve = load_endpoint(str(run_dir / "saved_model"))
    assert results["photos_mnist"] == np.mean(serve(digits).numpy().argmax(axis=1) == labels)
    assert results["photos_images"] == 40
    for light in bench_photos.LIGHTS:
        assert 0 <= results[f"photos_{light}"] <= 1
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 4 + len(bench_photos.LIGHTS) and "40 test digits" in rows[0]
    # The unsure mark's rows: shares of the photographed answers, and consistent.
    assert "answers marked unsure (under 70%)" in rows[-2] and "wrong answers" in rows[-1]
    assert 0 <= results["photos_unsure_share"] <= 1
    assert 0 <= results["photos_wrong_marked_unsure"] <= 1


def test_bench_photos_refuses_a_regression_model(tiny_run, small_npz):
    import argparse

    from benchmarks import photos as bench_photos
    from hw1_keras.errors import InputError

    args = argparse.Namespace(data=small_npz, model=str(tiny_run[0] / "saved_model"))
    with pytest.raises(InputError, match="not an MNIST model; pass an MNIST run's saved_model"):
        bench_photos.main(args)


def _rows(log_file):
    if not log_file.exists():
        return []
    return log_file.read_text().strip().splitlines()[1:]


def _kill_when(small_npz, out, repo_root, ready) -> list[str]:
    """Starts a 3-epoch run into `out`, kill -9s it once `ready()`; returns its command."""
    command = [sys.executable, "run.py", "mnist", "--data", small_npz, "--out", str(out),
               "--epochs", "3", "--validation-size", "200", "--dense-units", "32",
               "--augmented-copy", "0"]
    process = subprocess.Popen(command, cwd=repo_root, env=QUIET, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return command


def _rerun_to_the_end(command, out, capsys) -> str:
    """Reruns `command` in this process (only the kill needs a process of its own).

    Checks it finished all 3 epochs, each logged, as a resumed run; returns
    what it printed.
    """
    capsys.readouterr()
    assert run_cli(*command[2:]) == 0  # Without `python run.py`.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["epochs"] == 3
    epochs = [int(row.split(",")[0]) for row in _rows(out / "training_log.csv")]
    assert sorted(set(epochs)) == [0, 1, 2]
    return capsys.readouterr().out


def test_a_killed_run_resumes_at_its_last_finished_epoch(small_npz, tmp_path, repo_root,
                                                         capsys):
    out = tmp_path / "resumable"
    # An epoch's log row is written just before its backup, and the backup's
    # weights before its metadata (BackupAndRestore's own file): wait for the
    # last, or the kill lands before or inside the backup and leaves nothing
    # to resume from.
    backup_done = out / "backup" / "training_metadata.json"
    command = _kill_when(small_npz, out, repo_root, lambda: (
        len(_rows(out / "training_log.csv")) >= 1 and backup_done.exists()))
    killed_after = len(_rows(out / "training_log.csv"))
    assert 1 <= killed_after < 3 and (out / "backup").exists()
    printed = _rerun_to_the_end(command, out, capsys)
    assert f"resuming after epoch {killed_after}" in printed


def test_a_backup_torn_by_a_kill_falls_back_to_the_previous_one(small_npz, tmp_path,
                                                                repo_root, capsys):
    # kill -9 in the middle of writing the backup's weights leaves a torn file;
    # the run keeps the previous backup too (double_checkpoint) and resumes
    # from that one instead of failing.
    out = tmp_path / "torn"
    metadata = out / "backup" / "training_metadata.json"
    command = _kill_when(small_npz, out, repo_root, lambda: (
        metadata.exists() and '"epoch": 2' in metadata.read_text()))
    weights = out / "backup" / "latest.weights.h5"
    assert (out / "backup" / "latest.weights.h5.bkp").exists()
    weights.write_bytes(weights.read_bytes()[:1000])  # Torn mid-write.
    _rerun_to_the_end(command, out, capsys)


def test_a_run_stopped_while_exporting_finishes_without_training_again(small_npz, tmp_path,
                                                                       monkeypatch, capsys):
    from hw1_keras.mnist import train

    config = MnistConfig(data=small_npz, **{**SMALL, "dense_units": 32})
    out = tmp_path / "stopped"

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train.mnist_plots, "filters", ctrl_c)  # Ctrl-C after training.
        with pytest.raises(KeyboardInterrupt):
            train.run(config, str(out))
    log = (out / "training_log.csv").read_bytes()
    assert len(_rows(out / "training_log.csv")) == 2 and not (out / "metrics.json").exists()
    capsys.readouterr()
    metrics = train.run(config, str(out))
    assert "resuming after epoch 2" in capsys.readouterr().out
    assert (out / "training_log.csv").read_bytes() == log  # No epoch trained again.
    assert metrics["resumed"] and metrics["epochs"] == 2 and (out / "filters.png").exists()
    assert not (out / "backup").exists()  # Finished now.


def test_the_same_command_on_a_finished_run_keeps_its_results_without_training(
        small_run, small_npz, capsys):
    from hw1_keras.mnist import train

    run_dir, metrics = small_run
    files = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train.MnistHyperModel, "fit", None)  # Training would fail.
        again = train.run(MnistConfig(data=small_npz, **SMALL), str(run_dir))
    assert "this run finished already (test accuracy" in capsys.readouterr().out
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == files


def test_resuming_with_other_settings_is_refused_and_changes_nothing(small_npz, tmp_path, cli):
    from hw1_keras.config import to_dict
    from hw1_keras.runs import write_json

    out = tmp_path / "interrupted"
    (out / "backup").mkdir(parents=True)  # What a run killed after its 1st epoch leaves.
    (out / "training_log.csv").write_text("epoch,accuracy,val_accuracy\n0,0.5,0.5\n")
    write_json(out / "config.json", to_dict(MnistConfig(data=small_npz, **SMALL)))
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    result = cli("mnist", "--data", small_npz, "--out", out, "--validation-size", "200",
                 "--dense-units", "64", "--epochs", "3", "--seed", "1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "holds an interrupted run with other settings (epochs 2 -> 3; seed 0 -> 1)" \
        in result.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before


def test_bad_data_file_leaves_an_earlier_run_untouched(small_run, cli, tmp_path):
    run_dir, _ = small_run
    before = (run_dir / "metrics.json").read_bytes()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 5, 5), np.uint8))
    result = cli("mnist", "--data", bad, "--out", run_dir)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing arrays" in result.stderr
    assert (run_dir / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_quick_run_reaches_99_percent_on_real_mnist(mnist_file, tmp_path):
    from hw1_keras.mnist.config import quick_preset
    from hw1_keras.mnist.train import run
    import dataclasses

    metrics = run(dataclasses.replace(quick_preset(), data=mnist_file), str(tmp_path / "quick"))
    assert metrics["test_accuracy"] >= 0.99


def test_a_log_row_cut_short_is_left_out_and_repaired_on_resume(tmp_path):
    from hw1_keras.backup import read_log

    path = tmp_path / "training_log.csv"
    whole = "epoch,accuracy,val_accuracy\r\n0,0.5,0.6\r\n1,0.7,0.8\r\n"
    for torn in ("2,0.9", "2,0.9,", "2,0.9,0.8"):  # Cut by a kill; the last has no line end.
        path.write_bytes((whole + torn).encode())
        assert read_log(path) == {"epoch": [0, 1], "accuracy": [0.5, 0.7],
                                  "val_accuracy": [0.6, 0.8]}
        assert path.read_bytes() == (whole + torn).encode()  # Reading changes nothing.
        read_log(path, repair=True)
        assert path.read_bytes() == whole.encode()  # The next row starts its own line.
    assert read_log(tmp_path / "missing.csv") == {}
