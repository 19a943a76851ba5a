"""Device policy, strategies and the multi-worker path, all testable without a GPU.

The policy is a pure function of device lists, so GPU machines are mocked by
name. Runs that split the CPU into logical devices or start workers need fresh
processes (TensorFlow fixes its devices when it starts), so they go through
`python run.py` like a user.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import run_cli, write_mnist_slice
from hw1_keras import cluster
from hw1_keras.devices import DeviceConfig, Policy, check_batch, choose_policy, read_tf_config
from hw1_keras.errors import InputError

CPU = ["/device:CPU:0"]
ONE_GPU = ["/device:GPU:0"]
TWO_GPUS = ["/device:GPU:0", "/device:GPU:1"]
TWO_WORKERS = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
# Loss curves of a replicated run and a one-device run differ by float
# summation order only (measured: ~2e-7 relative over 200 epochs).
CURVE_RTOL = 1e-4


def policy(task, gpus, **settings) -> Policy:
    return choose_policy(DeviceConfig(**settings), task, gpus=gpus, cpus=CPU,
                         tf_config=TWO_WORKERS if settings.get("distribute") == "multiworker"
                         else None)


def test_cpu_trains_in_float32_without_a_strategy():
    for task in ("regression", "mnist"):
        chosen = policy(task, [])
        assert (chosen.device_type, chosen.strategy, chosen.replicas, chosen.precision) == (
            "CPU", "none", 1, "float32")
    # XLA: measured slower for the CNN on CPU, ~4x faster for the regression's loop.
    assert not policy("mnist", []).jit
    assert policy("regression", []).jit


def test_one_gpu_gets_mixed_precision_and_xla_for_the_cnn():
    chosen = policy("mnist", ONE_GPU)
    assert (chosen.device_type, chosen.strategy, chosen.precision, chosen.jit) == (
        "GPU", "none", "mixed_float16", True)
    assert policy("regression", ONE_GPU).precision == "float32"  # Tiny MLP: no gain.


def test_several_gpus_are_mirrored_automatically():
    chosen = policy("mnist", TWO_GPUS)
    assert chosen.strategy == "mirrored" and chosen.replicas == 2
    assert chosen.devices == tuple(TWO_GPUS)
    assert policy("mnist", TWO_GPUS, distribute="none").replicas == 1


def test_overrides_win_over_auto():
    chosen = policy("mnist", ONE_GPU, precision="float32", jit="off")
    assert (chosen.precision, chosen.jit) == ("float32", False)
    assert policy("mnist", [], precision="mixed", jit="on").precision == "mixed_float16"
    assert policy("mnist", [], precision="bfloat16").precision == "mixed_bfloat16"
    # Replicated, the regression uses Keras' own step, which runs without XLA.
    assert not policy("regression", [], distribute="mirrored").jit


def test_multiworker_counts_workers_and_needs_tf_config():
    chosen = policy("regression", [], distribute="multiworker")
    assert (chosen.workers, chosen.replicas) == (2, 2)
    with pytest.raises(InputError, match="TF_CONFIG"):
        choose_policy(DeviceConfig(distribute="multiworker"), "mnist", [], CPU, None)


@pytest.mark.parametrize("text", ["{not json", '{"cluster": {}}',
                                  '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps"}}'])
def test_a_malformed_tf_config_is_one_clear_error(text):
    with pytest.raises(InputError, match="TF_CONFIG is not valid"):
        read_tf_config({"TF_CONFIG": text})
    assert read_tf_config({}) is None


@pytest.mark.parametrize("task, expected", [
    ('{"type": "worker", "index": 3}', "index 3 is not one of the cluster's 2 worker"),
    ('{"type": "worker", "index": -1}', "index -1"),
    ('{"type": "worker", "index": "0"}', "index '0'"),
    ('{"type": "chief", "index": 0}', "the cluster's 0 chief address(es)")])
def test_a_task_outside_its_cluster_is_one_clear_error(task, expected):
    text = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": %s}' % task
    with pytest.raises(InputError, match=re.escape(expected)) as error:
        read_tf_config({"TF_CONFIG": text})
    assert "\n" not in str(error.value)
    assert read_tf_config({"TF_CONFIG": text.replace(task, '{"type": "worker", "index": 1}')})


def test_the_global_batch_must_split_evenly_over_replicas():
    three = Policy("GPU", ("a", "b", "c"), "mirrored", 1, "float32", False)
    assert check_batch(129, three) == 43
    with pytest.raises(InputError, match="--batch-size 128 does not split evenly over 3 "
                                         "replicas; use a multiple of 3, e.g. 129"):
        check_batch(128, three)


@pytest.mark.parametrize("settings, flag", [
    (dict(precision="half"), "--precision"), (dict(jit="yes"), "--jit"),
    (dict(distribute="horovod"), "--distribute"), (dict(cpu_devices=0), "--cpu-devices")])
def test_bad_device_settings_name_their_flag(settings, flag):
    with pytest.raises(InputError, match=flag):
        DeviceConfig(**settings)


def test_cli_rejects_a_batch_that_does_not_split_before_writing(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("regression", "--batch-size", "51", "--distribute", "mirrored",
                 "--cpu-devices", "2", "--out", out)
    assert result.returncode == 2
    assert "--batch-size 51 does not split evenly over 2 replicas" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_search_never_distributes_by_itself():
    from hw1_keras.cli import _device, build_parser

    for command in ("regression", "mnist"):
        args = build_parser().parse_args([command, "--tune"])
        assert _device(args, tune=True).distribute == "none"
        assert _device(args, tune=False).distribute == "auto"  # A plain run may.


def test_cli_refuses_distribute_with_tune(cli):
    result = cli("mnist", "--tune", "--distribute", "mirrored")
    assert result.returncode == 2 and "KerasTuner's chief/worker mode" in result.stderr


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


# The regression runs compared: 200 epochs = 400 optimizer steps, 2 logged blocks.
SHORT_REGRESSION = ["regression", "--epochs", "200", "--log-every", "100"]


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """The short regression on one device, in this process: the reference curve."""
    out = tmp_path_factory.mktemp("single") / "run"
    assert run_cli(*SHORT_REGRESSION, "--out", out) == 0
    metrics = _metrics(out)
    assert metrics["device"]["strategy"] == "none"
    return metrics


def test_regression_mirrored_over_two_logical_cpus_matches_one_device(cli, tmp_path,
                                                                       one_device_run):
    mirrored = cli(*SHORT_REGRESSION, "--distribute", "mirrored", "--cpu-devices", "2",
                   "--out", tmp_path / "mirrored")
    assert mirrored.returncode == 0, mirrored.stderr[-2000:]
    assert "strategy mirrored, 2 replica(s)" in mirrored.stdout
    replicated = _metrics(tmp_path / "mirrored")
    assert replicated["device"]["replicas"] == 2 and replicated["device"]["strategy"] == "mirrored"
    np.testing.assert_allclose(replicated["history"]["loss"], one_device_run["history"]["loss"],
                               rtol=CURVE_RTOL)
    assert (tmp_path / "mirrored" / "saved_model" / "saved_model.pb").exists()


def test_a_short_last_batch_trains_mirrored_as_on_one_device(cli, tmp_path, capfd):
    # 100 points at batch 30: every epoch ends with a batch of 10 real rows
    # padded to 30, which the replicas must average over its 10 rows only.
    # 250 epochs logged every 100: the last block is short (50 epochs), and
    # must train and log its own 200 steps, not a 400-step epoch cut short.
    short = ["regression", "--epochs", "250", "--log-every", "100", "--batch-size", "30"]
    assert run_cli(*short, "--out", tmp_path / "one") == 0  # One device: this process.
    assert "ran out of data" not in capfd.readouterr().err
    result = cli(*short, "--distribute", "mirrored", "--cpu-devices", "2",
                 "--out", tmp_path / "mirrored")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ran out of data" not in result.stderr
    one, mirrored = _metrics(tmp_path / "one"), _metrics(tmp_path / "mirrored")
    assert mirrored["optimizer_steps"] == one["optimizer_steps"] == 250 * 4
    assert len(mirrored["history"]["loss"]) == 3
    # The logged training MSE too: it must weigh the rows as the loss does
    # (padding out, a short batch's real rows up), not count padding as data.
    for name in ("loss", "mse"):
        np.testing.assert_allclose(mirrored["history"][name], one["history"][name],
                                   rtol=CURVE_RTOL, err_msg=name)


@pytest.mark.parametrize("flags, device", [
    (["--distribute", "mirrored", "--cpu-devices", "2"], {"replicas": 2, "precision": "float32"}),
    (["--precision", "bfloat16"], {"replicas": 1, "precision": "mixed_bfloat16"}),
], ids=["mirrored", "bfloat16"])
def test_mnist_trained_mirrored_or_in_bfloat16_exports_a_plain_model(cli, tmp_path, mnist_file,
                                                                     flags, device, capsys):
    # The device and the export are checked, not what the model learns: 240
    # training images do (bfloat16 is emulated on most CPUs, and slow).
    npz = write_mnist_slice(mnist_file, tmp_path / "few.npz", train=300, test=50)
    out = tmp_path / "run"
    result = cli("mnist", "--data", npz, "--validation-size", "60", "--dense-units", "64",
                 "--epochs", "1", *flags, "--out", out, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = _metrics(out)
    assert {key: metrics["device"][key] for key in device} == device
    assert metrics["epochs"] == 1
    # No bfloat16 or float16 anywhere in the exported graph (a mixed-precision
    # model keeps float32 weights, but its graph would compute in bfloat16).
    assert not graph_dtypes(out / "saved_model") & {"bfloat16", "float16"}
    # The export is the single-device float32 model: it answers in a process
    # that never trained it, with no strategy and the default policy.
    image = np.load(npz)["x_test"][:1]
    capsys.readouterr()
    assert run_cli("predict", "--model", out / "saved_model", *_pngs(tmp_path, image)) == 0
    assert capsys.readouterr().out.count("(") == 1


def graph_dtypes(saved_model_dir) -> set[str]:
    """Every dtype a SavedModel's graph and functions name, e.g. {"float32", "uint8", ...}."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString(
        (saved_model_dir / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    nodes = [*graph.node, *(node for function in graph.library.function
                             for node in function.node_def)]
    found = set()
    for node in nodes:
        for value in node.attr.values():
            found.update([value.type] if value.type else [])
            found.update(value.list.type)
    return {tf.dtypes.as_dtype(dtype).name for dtype in found}


def test_graph_dtypes_sees_bfloat16_compute(tmp_path):
    import keras

    previous = keras.mixed_precision.global_policy()
    try:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            inputs = keras.Input((4,))
            model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(
                keras.layers.Dense(3)(inputs)))
            model.export(tmp_path / policy, verbose=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert "bfloat16" not in graph_dtypes(tmp_path / "float32")
    assert "bfloat16" in graph_dtypes(tmp_path / "mixed_bfloat16")


def _pngs(folder, images):
    from PIL import Image

    paths = []
    for index, image in enumerate(images):
        path = folder / f"digit{index}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.integration
def test_two_workers_on_loopback_train_as_one(tmp_path, one_device_run):
    outs = [str(tmp_path / "chief"), str(tmp_path / "worker1")]
    workers = cluster.run_workers(SHORT_REGRESSION, count=2, timeout=110, outs=outs)
    for worker in workers:
        assert worker.returncode == 0, worker.stderr[-3000:]
    # The chief alone writes; both end with bit-identical weights.
    assert (tmp_path / "chief" / "metrics.json").exists()
    assert not (tmp_path / "worker1").exists()
    assert workers[0].fingerprint is not None
    assert workers[0].fingerprint == workers[1].fingerprint
    metrics = _metrics(tmp_path / "chief")
    assert metrics["device"]["strategy"] == "multiworker" and metrics["device"]["replicas"] == 2
    # Same global batch and seed in one process: the same loss curve.
    np.testing.assert_allclose(metrics["history"]["loss"], one_device_run["history"]["loss"],
                               rtol=CURVE_RTOL)
