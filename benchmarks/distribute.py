"""`python run.py bench distribute`: what tf.distribute costs and whether it is exact.

Two figures, both on this machine's CPU (no GPU is needed, or used):

* Mirrored overhead: training images/s of the default CNN on one device versus
  `MirroredStrategy` over 2 logical CPU devices, in the same process and run,
  alternating twice so the machine's drift hits both alike. The two logical
  devices share the same cores, so this measures the strategy's cost (batch
  splitting, all-reduce), not a speed-up.
* Multi-worker loopback: 2 worker processes on 127.0.0.1 train the regression
  under `MultiWorkerMirroredStrategy`; seconds per epoch, whether the workers'
  final weights are identical, and how far the loss curve is from one process
  with the same global batch and seed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hw1_keras import cluster
from benchmarks.common import row
from hw1_keras.errors import InputError

THROUGHPUT_STEPS = 60  # Batches timed per setting, after a warm-up.
LOOPBACK = ["regression", "--epochs", "1000", "--log-every", "250"]


def mirrored_overhead(data: str, batch_size: int = 128) -> dict:
    """Images/s of the CNN on 1 device vs. mirrored over 2 logical CPUs."""
    import tensorflow as tf

    from hw1_keras import devices
    from benchmarks.mnist import images_per_second, training_dataset
    from hw1_keras.mnist import data as mnist_data
    from hw1_keras.mnist import pipeline
    from hw1_keras.mnist.config import MnistConfig
    from hw1_keras.mnist.model import build_model, hyperparameters

    devices.setup(devices.DeviceConfig(distribute="none", cpu_devices=2), "mnist")
    config = dataclasses.replace(MnistConfig(), data=data, batch_size=batch_size)
    split = mnist_data.load(config.data, config.validation_size, config.seed)
    augment = pipeline.augmentation(config.rotation, config.translation, config.shear,
                                    config.seed, config.zoom, config.elastic)
    dataset, images = training_dataset(config, split, augment)
    strategies = {
        "one device": tf.distribute.get_strategy(),
        "mirrored, 2 logical CPUs": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
    models = {}
    for name, strategy in strategies.items():
        with strategy.scope():
            models[name] = build_model(hyperparameters(config))
            models[name].fit(dataset.take(5), epochs=1, verbose=0, shuffle=False)  # Warm-up.
    print(f"mirrored overhead (default CNN, global batch {batch_size}, "
          f"{THROUGHPUT_STEPS} steps each)")
    rates: dict[str, list[float]] = {}
    for name in [*strategies, *strategies]:
        rates.setdefault(name, []).append(images_per_second(
            models[name], dataset, steps=THROUGHPUT_STEPS, batch_size=batch_size,
            images_per_pass=images))
    single, mirrored = (max(rates[name]) for name in strategies)
    row("images/s, one device", f"{single:.0f}")
    row("images/s, mirrored over 2 logical CPUs", f"{mirrored:.0f}")
    row("slowdown (one device / mirrored)", f"{single / mirrored:.2f}x")
    devices.clear_session()
    return {"images_per_second_one_device": single, "images_per_second_mirrored": mirrored,
            "mirrored_slowdown": single / mirrored}


def multiworker_loopback(out: Path) -> dict:
    """Two local workers vs. one process: seconds per epoch, weights, loss curve."""
    outs = [str(out / "chief"), str(out / "worker1")]
    print(f"multi-worker loopback: 2 workers on 127.0.0.1, run.py {' '.join(LOOPBACK)}")
    workers = cluster.run_workers(LOOPBACK, count=2, timeout=600, outs=outs)
    for worker in workers:
        if worker.returncode != 0:
            raise RuntimeError(f"worker {worker.index} failed:\n{worker.stderr[-3000:]}")
    chief = json.loads((out / "chief" / "metrics.json").read_text())
    single_dir = out / "single"
    finished = subprocess.run([sys.executable, str(cluster.RUN_PY), *LOOPBACK, "--distribute",
                               "none", "--out", str(single_dir)], capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"the single-process run failed:\n{finished.stderr[-3000:]}")
    single = json.loads((single_dir / "metrics.json").read_text())
    epochs = chief["config"]["epochs"]
    identical = workers[0].fingerprint is not None and (
        workers[0].fingerprint == workers[1].fingerprint)
    loss_chief = np.array(chief["history"]["loss"])
    loss_single = np.array(single["history"]["loss"])
    difference = float(np.max(np.abs(loss_chief - loss_single)))
    row("time per epoch, 2 workers", f"{chief['train_seconds'] / epochs * 1000:.2f} ms")
    row("time per epoch, 1 process (multi-step XLA loop)",
        f"{single['train_seconds'] / epochs * 1000:.2f} ms")
    row("workers' final weights", "bit-identical (same SHA-256), max abs difference 0"
        if identical else "DIFFER")
    row("loss curve, max abs difference vs 1 process",
        f"{difference:.2e} (relative {difference / float(np.max(np.abs(loss_single))):.1e})")
    row("worker 1 wrote a run folder", str(Path(outs[1]).exists()))
    return {"multiworker_seconds_per_epoch": chief["train_seconds"] / epochs,
            "single_seconds_per_epoch": single["train_seconds"] / epochs,
            "workers_weights_identical": identical,
            "loss_max_abs_difference": difference}


def main(args) -> dict:
    """Runs both parts; the mirrored part needs `--data`."""
    from benchmarks.mnist import check_data

    if not args.data:
        raise InputError("bench distribute needs --data PATH.npz (the CNN part reads MNIST)")
    check_data(args.data, "distribute")  # Not after the minute the loopback part takes.
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-distribute-") as scratch:
        results.update(multiworker_loopback(Path(scratch)))
    results.update(mirrored_overhead(args.data))
    return results
