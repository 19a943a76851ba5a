"""`run.py bench mnist` and `bench distribute`: reuse, early checks, honest figures."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import distribute as bench_distribute, mnist as bench_mnist
from hw1_keras.config import to_dict
from hw1_keras.errors import InputError
from hw1_keras.mnist.config import MnistConfig
from hw1_keras.runs import read_json, write_json


def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path, monkeypatch):
    out = tmp_path / "resume-reference"
    args = ["--data", "mnist.npz", "--epochs", "4", "--augmented-copy", "0", "--out", str(out)]
    out.mkdir()
    write_json(out / "config.json", to_dict(bench_mnist._resolved_config(args)))
    write_json(out / "metrics.json", {"test_accuracy": 0.99, "total_seconds": 12.0})

    def no_run(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench_mnist, "run_py", no_run)
    assert bench_mnist._timed_run(args) == ({"test_accuracy": 0.99, "total_seconds": 12.0}, 12.0)
    other = [*args[:3], "6", *args[4:]]  # An earlier benchmark's --resume-epochs 4, now 6.
    with pytest.raises(InputError, match=r"holds a run with other settings \(epochs 4 -> 6\)"):
        bench_mnist._timed_run(other)
    assert read_json(out / "metrics.json")["total_seconds"] == 12.0


def test_the_quick_preset_counts_in_the_settings():
    quick = bench_mnist._resolved_config(["--quick", "--data", "mnist.npz", "--out", "x"])
    assert (quick.epochs, quick.augmented_copy) == (3, 0)


def _bench_args(*argv: str):
    """`run.py bench ARGV` as the CLI hands it to a benchmark's `main`."""
    from hw1_keras.cli import _bench_defaults, build_parser

    args = build_parser().parse_args(["bench", *argv])
    _bench_defaults(args)
    return args


def _tiny_npz(path, train: int) -> str:
    """A well-formed MNIST-layout file of `train` blank training images."""
    images = np.zeros((train, 28, 28), np.uint8)
    np.savez(path, x_train=images, y_train=np.arange(train) % 10,
             x_test=images[:10], y_test=np.arange(10))
    return str(path)


def _no_run(*args, **kwargs):
    raise AssertionError("a benchmark part ran before the arguments were checked")


@pytest.mark.integration
def test_interrupting_the_resume_part_kills_the_run_it_waits_on(tmp_path, monkeypatch):
    started = []

    def waiting_run(args, **popen):  # A run that never logs an epoch, in its own session.
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                        **popen))
        return started[-1]

    def ctrl_c(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_mnist, "_timed_run", lambda args: ({"test_accuracy": 0.9}, 1.0))
    monkeypatch.setattr(bench_mnist, "_run_cli", waiting_run)
    monkeypatch.setattr(bench_mnist.time, "sleep", ctrl_c)
    config = dataclasses.replace(MnistConfig(), data="mnist.npz")
    with pytest.raises(KeyboardInterrupt):
        bench_mnist.resume(config, tmp_path, epochs=2, kill_after=1)
    (process,) = started
    assert process.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):  # Nothing of its session is left either.
        os.killpg(process.pid, 0)


@pytest.mark.integration
def test_a_failed_run_ends_in_its_one_line_error(tmp_path):
    config = dataclasses.replace(MnistConfig(), data=str(tmp_path / "missing.npz"))
    with pytest.raises(InputError, match=r"^the benchmark's run.py mnist --quick .* exited "
                                         r"with 2: run.py mnist: error: --data .*: no such file"):
        bench_mnist.quick(config, tmp_path / "bench")


def test_resume_needs_two_epochs_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_mnist, "_timed_run", _no_run)
    monkeypatch.setattr(bench_mnist, "_run_cli", _no_run)
    args = _bench_args("mnist", "--data", _tiny_npz(tmp_path / "tiny.npz", 100), "--parts",
                       "resume", "--resume-epochs", "1", "--out", str(tmp_path / "bench"))
    with pytest.raises(InputError, match=r"--resume-epochs 1: the resume part needs at "
                                         r"least 2 epochs, one to finish before the kill"):
        bench_mnist.main(args)
    assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("task", ["mnist", "distribute"])
def test_too_few_training_images_are_refused_in_bench_terms(tmp_path, monkeypatch, task):
    monkeypatch.setattr(bench_distribute, "multiworker_loopback", _no_run)
    argv = [task, "--data", _tiny_npz(tmp_path / "tiny.npz", 12_000)]
    if task == "mnist":
        argv += ["--parts", "precision", "--out", str(tmp_path / "bench")]
    main = bench_mnist.main if task == "mnist" else bench_distribute.main
    with pytest.raises(InputError, match=rf"holds 12,000 training images; bench {task} holds "
                                         r"out 12,000 for validation, so it needs more than "
                                         r"that: pass the full MNIST file"):
        main(_bench_args(*argv))


def test_bench_distribute_checks_its_data_file_first(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_distribute, "multiworker_loopback", _no_run)
    with pytest.raises(InputError, match=r"typo.npz: no such file"):
        bench_distribute.main(_bench_args("distribute", "--data", str(tmp_path / "typo.npz")))


@pytest.mark.parametrize("train", [100, 64, 30_000])
def test_images_per_second_counts_the_images_trained_on(monkeypatch, train):
    """On a file whose pass holds fewer than the timed batches, or ends in a short one."""
    from hw1_keras.mnist.data import Mnist

    class Counting:
        images = 0

        def fit(self, dataset, **kwargs):
            for batch, _ in dataset:
                self.images += len(batch)

    config = MnistConfig()
    images = np.zeros((train, 28, 28), np.uint8)
    labels = np.zeros(train, np.int64)
    data = Mnist(images, labels, images[:1], labels[:1], images[:1], labels[:1])
    dataset, per_pass = bench_mnist.training_dataset(config, data, augment=None)
    clock = iter([0.0, 2.0])  # Start and end of the timed fit: 2 s.
    monkeypatch.setattr(bench_mnist.time, "perf_counter", lambda: next(clock))
    model = Counting()
    rate = bench_mnist.images_per_second(model, dataset, steps=bench_mnist.THROUGHPUT_STEPS,
                                         batch_size=config.batch_size, images_per_pass=per_pass)
    assert model.images > 0 and rate == model.images / 2


QUIET_CHILD = """
import subprocess, sys
from hw1_keras.process import import_tensorflow_quietly
import_tensorflow_quietly()
child = "from hw1_keras.process import import_tensorflow_quietly; import_tensorflow_quietly()"
sys.exit(subprocess.run([sys.executable, "-c", child]).returncode)
"""


@pytest.mark.parametrize("user_level", [None, "0"])
@pytest.mark.integration
def test_runs_a_benchmark_starts_import_tensorflow_as_quietly_as_it(tmp_path, repo_root,
                                                                    user_level):
    """A stand-in `tensorflow` that chatters on stderr, imported by a run.py and its child."""
    (tmp_path / "tensorflow.py").write_text("import os\nos.write(2, b'chatter\\n')\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "HW1_KERAS_QUIETED_TF")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(repo_root)])
    if user_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = user_level
    result = subprocess.run([sys.executable, "-c", QUIET_CHILD], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Quiet both, or, where the user set the level, let both speak as TensorFlow would.
    assert result.stderr == ("" if user_level is None else "chatter\n" * 2)
