"""A model trained on several replicas: building it for `fit`, and the copy the chief keeps.

Training may run under a `tf.distribute` strategy and a mixed precision
policy; everything after it (evaluation, plots, export) works on one float32
copy outside any strategy (`trained_copy`), so a run's results are the same
on every kind of machine. Where the strategies come from: `hw1_keras.devices`.
"""

from __future__ import annotations

import hashlib

import keras
import tensorflow as tf

from hw1_keras import compat, devices


def trained_copy(model, build, runtime: devices.Runtime):
    """What a run evaluates and exports after training `model` under `runtime`.

    On a multi-worker run every worker first prints its weights' fingerprint
    (`report_weights`); then the chief gets `single_device_copy`, and the
    other workers, which evaluate and export nothing, `model` as it is.

    Args:
        model: The trained model.
        build: A zero-argument function building the same architecture.
        runtime: Where it trained (`devices.setup`).
    """
    report_weights(model, runtime)
    if not runtime.is_chief:
        return model
    return single_device_copy(model, build, runtime.policy)


def prepare_fit(model, dataset) -> None:
    """Works around Keras 3's `fit` under `MultiWorkerMirroredStrategy` (keras#20585).

    Before training, Keras builds the model's metrics and optimizer from the
    first batch, which it averages over the workers with `strategy.reduce`;
    with several workers that call fails ("Attempt to convert a value
    (PerReplica...)"). Building from an undistributed batch of the same
    dataset gives the same variables, so that is done here, once, and Keras'
    own step is skipped. Does nothing under any other strategy.

    Args:
        model: A compiled model, created in the strategy's scope.
        dataset: The `tf.data` dataset about to be passed to `fit`.
    """
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        compat.build_before_fit(model, next(iter(dataset)))
    compat.average_metrics_over_replicas()


def weights_fingerprint(model) -> str:
    """A SHA-256 of every weight's bytes: equal fingerprints, identical weights."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def report_weights(model, runtime: devices.Runtime) -> str | None:
    """On a multi-worker run, prints this worker's final-weights fingerprint.

    Synchronous training leaves every worker with the same weights; the line
    lets anyone compare the workers' logs to check it.
    """
    if runtime.policy.workers < 2:
        return None
    fingerprint = weights_fingerprint(model)
    print(f"worker {runtime.worker_index} of {runtime.policy.workers}: final weights "
          f"sha256 {fingerprint}", flush=True)
    return fingerprint


def single_device_copy(model, build, policy: devices.Policy):
    """`model`'s trained weights in a fresh float32 model outside any strategy.

    Evaluation, plots and the SavedModel use this copy, so they are the same on
    every kind of run: no mirrored variables, no float16 or bfloat16, no
    collective ops that would need every worker to take part.

    Args:
        model: The trained model.
        build: A zero-argument function building the same architecture.
        policy: The policy `model` trained under.
    """
    if policy.strategy == "none" and policy.precision == "float32":
        return model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = build()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
