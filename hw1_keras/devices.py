"""Where a run trains: device report, precision/XLA policy and tf.distribute strategy.

The same training code runs on a laptop CPU, one GPU, several GPUs and several
machines; this module picks the settings for each and prints them once:

* CPU: float32 and no XLA for the CNN (float16 and XLA both measured slower
  on these CPUs); the regression's multi-step loop keeps XLA, which is ~4x
  faster here.
* GPU: memory growth, `mixed_float16` for the CNN (its logits stay float32),
  XLA for the CNN.
* `--precision bfloat16` (`mixed_bfloat16`): opt-in, for CPUs with bfloat16
  arithmetic (AVX512_BF16 or AMX); `python run.py bench mnist --parts
  precision` measures whether it pays on a given machine.
* `--distribute auto`: `MirroredStrategy` when more than one GPU is visible,
  else no strategy; `multiworker` reads `TF_CONFIG`.

`choose_policy` is a pure function of the device lists, so the choice is
testable without a GPU; `setup` applies it to the running TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os

from hw1_keras.config import option, require
from hw1_keras.errors import InputError

PRECISIONS = ("auto", "float32", "mixed", "bfloat16")
# What each choice trains with, as a Keras dtype policy.
POLICIES = {"float32": "float32", "mixed": "mixed_float16", "bfloat16": "mixed_bfloat16"}
JIT = ("auto", "on", "off")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
TASKS = ("regression", "mnist")


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
    """How a run uses its hardware; shared by both tasks, recorded in `metrics.json`."""

    precision: str = option(
        "auto", "auto: mixed_float16 for the CNN on GPU, else float32 (float16 is "
        "slower on CPUs and buys the tiny regression MLP nothing); float32; mixed "
        "(float16); bfloat16 (mixed_bfloat16: faster only on CPUs with bfloat16 "
        "arithmetic, AVX512_BF16 or AMX; see `bench mnist --parts precision`)"
    )
    jit: str = option(
        "auto", "XLA: auto = where measured faster (the CNN on GPU; the regression's "
        "multi-step loop on one device, not mirrored); on; off"
    )
    distribute: str = option(
        "auto", "auto: mirrored when more than one GPU is visible, else none; mirrored: "
        "all local GPUs (or logical CPUs); multiworker: the machines in TF_CONFIG"
    )
    cpu_devices: int = option(
        1, "split the CPU into this many logical devices, to try mirrored training "
        "without GPUs (no faster: they share the same cores)"
    )

    def __post_init__(self):
        require(self.precision in PRECISIONS, self, "precision",
                "auto, float32, mixed or bfloat16")
        require(self.jit in JIT, self, "jit", "auto, on or off")
        require(self.distribute in STRATEGIES, self, "distribute",
                "auto, none, mirrored or multiworker")
        require(1 <= self.cpu_devices <= 64, self, "cpu_devices", "a whole number in 1..64")


@dataclasses.dataclass(frozen=True)
class Policy:
    """The settings a run trains with, before any of them is applied."""

    device_type: str  # "GPU" or "CPU": where the replicas run.
    devices: tuple[str, ...]  # The local devices the strategy uses.
    strategy: str  # "none", "mirrored" or "multiworker".
    workers: int  # Machines (processes) taking part; 1 unless multiworker.
    precision: str  # A Keras dtype policy: "float32", "mixed_float16" or "mixed_bfloat16".
    jit: bool

    @property
    def replicas(self) -> int:
        """Replicas in sync: local devices used times workers."""
        local = len(self.devices) if self.strategy == "mirrored" else 1
        return local * self.workers

    def describe(self) -> str:
        """One line for the run's log."""
        return (f"devices: {len(self.devices)} {self.device_type} ({', '.join(self.devices)}), "
                f"strategy {self.strategy}, {self.replicas} replica(s), {self.precision}, "
                f"XLA {'on' if self.jit else 'off'}")


def read_tf_config(environ=os.environ) -> dict | None:
    """`TF_CONFIG` as a dict, or None when unset; InputError when malformed."""
    text = environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if not isinstance(workers, list) or task["type"] not in ("worker", "chief"):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InputError(
            'TF_CONFIG is not valid: expected JSON like {"cluster": {"worker": '
            '["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    members, index = config["cluster"].get(task["type"]), task.get("index", 0)
    count = len(members) if isinstance(members, list) else 0
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise InputError(
            f"TF_CONFIG is not valid: task {task['type']} index {index!r} is not one of "
            f"the cluster's {count} {task['type']} address(es); set task.index to "
            + (f"0..{count - 1}" if count else f"0 and list this machine under {task['type']}"))
    return config


def choose_policy(device: DeviceConfig, task: str, gpus: list[str], cpus: list[str],
                  tf_config: dict | None = None) -> Policy:
    """Picks device type, strategy, precision and XLA for `task`.

    Args:
        device: What the user asked for.
        task: "regression" or "mnist".
        gpus: Names of the visible GPUs.
        cpus: Names of the (logical) CPU devices.
        tf_config: `read_tf_config()`'s cluster description, for multiworker.

    Returns:
        The policy; nothing is applied yet.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r}; expected one of {TASKS}")
    on_gpu = bool(gpus)
    local = list(gpus) if on_gpu else list(cpus)
    strategy = device.distribute
    if strategy == "auto":
        strategy = "mirrored" if len(gpus) > 1 else "none"
    workers = 1
    if strategy == "multiworker":
        if tf_config is None:
            raise InputError(
                "--distribute multiworker needs TF_CONFIG describing the cluster; see the "
                "README's 'Several machines' section, or use --distribute mirrored")
        workers = len(tf_config["cluster"].get("worker", [])) + len(
            tf_config["cluster"].get("chief", []))
    if strategy != "mirrored":
        local = local[:1]
    precision = device.precision
    if precision == "auto":
        precision = "mixed" if on_gpu and task == "mnist" else "float32"
    jit = device.jit
    if jit == "auto":
        jit = "on" if on_gpu or task == "regression" else "off"
    if task == "regression" and strategy != "none":
        # Replicated, the regression trains with Keras' own step, without XLA
        # (see RegressionHyperModel._fit_replicated).
        jit = "off"
    return Policy(
        device_type="GPU" if on_gpu else "CPU",
        devices=tuple(local),
        strategy=strategy,
        workers=workers,
        precision=POLICIES[precision],
        jit=jit == "on",
    )


def check_batch(batch_size: int, policy: Policy, flag: str = "--batch-size") -> int:
    """The per-replica batch of a global `batch_size`; InputError when it does not divide."""
    replicas = policy.replicas
    if batch_size % replicas:
        suggestion = max(replicas, round(batch_size / replicas) * replicas)
        raise InputError(
            f"{flag} {batch_size} does not split evenly over {replicas} replicas; use a "
            f"multiple of {replicas}, e.g. {suggestion}")
    return batch_size // replicas


@dataclasses.dataclass
class Runtime:
    """A policy applied: the strategy object and whether this process writes results."""

    policy: Policy
    strategy: object  # tf.distribute.Strategy
    is_chief: bool
    worker_index: int = 0  # This process's place in TF_CONFIG's cluster.

    def record(self) -> dict:
        """The `device` entry of `metrics.json`."""
        return {**dataclasses.asdict(self.policy), "replicas": self.policy.replicas,
                "chief": self.is_chief}


_applied: dict = {}


def setup(device: DeviceConfig, task: str) -> Runtime:
    """Applies `device` for `task` to TensorFlow and prints the run's device line.

    Logical CPU devices and GPU memory growth can only be configured before
    TensorFlow initializes its runtime; a second call in one process reuses
    the first call's device split (and says so if a different one is asked).

    Returns:
        The runtime: policy, strategy, and whether this process is the chief.
    """
    import keras
    import tensorflow as tf

    tf_config = read_tf_config() if device.distribute == "multiworker" else None
    cpus = tf.config.list_physical_devices("CPU")
    gpus = tf.config.list_physical_devices("GPU")
    if "split" not in _applied:
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # TensorFlow already started (e.g. in a notebook): keep its setting.
        try:
            if device.cpu_devices > 1:
                tf.config.set_logical_device_configuration(
                    cpus[0], [tf.config.LogicalDeviceConfiguration()] * device.cpu_devices)
        except RuntimeError:
            raise InputError(
                "--cpu-devices must be set before TensorFlow starts; run it in a fresh "
                "process") from None
        _applied["split"] = device.cpu_devices
    elif _applied["split"] != device.cpu_devices:
        raise InputError(
            f"--cpu-devices {device.cpu_devices}: this process already runs with "
            f"{_applied['split']}; use a fresh process")
    if tf_config is not None and "multiworker" not in _applied:
        # Collective ops are configured when the strategy is created, which
        # must come before anything starts TensorFlow's runtime.
        try:
            _applied["multiworker"] = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError:
            raise InputError(
                "--distribute multiworker must start before TensorFlow runs anything; "
                "run it in a fresh process") from None
    policy = choose_policy(
        device, task,
        gpus=[d.name for d in tf.config.list_logical_devices("GPU")],
        cpus=[d.name for d in tf.config.list_logical_devices("CPU")],
        tf_config=tf_config,
    )
    keras.mixed_precision.set_global_policy(policy.precision)
    strategy, is_chief = _strategy(policy, tf_config, tf)
    runtime = Runtime(policy, strategy, is_chief,
                      worker_index=tf_config["task"]["index"] if tf_config else 0)
    print(policy.describe(), flush=True)
    return runtime


def _strategy(policy: Policy, tf_config: dict | None, tf) -> tuple[object, bool]:
    if policy.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(list(policy.devices)), True
    if policy.strategy == "multiworker":
        task = tf_config["task"]
        is_chief = task["type"] == "chief" or (
            task["type"] == "worker" and task["index"] == 0
            and "chief" not in tf_config["cluster"])
        return _applied["multiworker"], is_chief
    return tf.distribute.get_strategy(), True


def clear_session() -> None:
    """`keras.backend.clear_session()`, keeping the dtype policy `setup` applied.

    Keras 3 keeps the global dtype policy in the state that `clear_session`
    resets, so a search freeing each trial's models would otherwise train
    every trial after the first in float32, whatever `--precision` asked for.
    """
    import keras

    policy = keras.config.dtype_policy()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
