"""SavedModel and ONNX export, and SavedModel loading, shared by every task."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from hw1_keras.errors import InputError
from hw1_keras.onnx_serving import Contract

ENDPOINT = "serve"


def export_saved_model(
    model: keras.Model,
    path: str | Path,
    input_signature: list[tf.TensorSpec] | None = None,
    serve: Callable | None = None,
) -> Path:
    """Exports `model` as a SavedModel with one deterministic `serve` endpoint.

    The export is written beside `path` first and moved into place at the end,
    so an interrupted export never leaves a half-written model where a good one
    was.

    Args:
        model: The trained model (tracked, so its variables are saved).
        path: The SavedModel folder to create or replace.
        input_signature: The endpoint's input specs; None when `serve` is a
            `tf.function` already traced for every signature it should accept.
        serve: The endpoint function; default `model(x, training=False)`, so
            dropout, batch-norm updates and augmentation never run in serving.

    Returns:
        The SavedModel folder.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=ENDPOINT,
        fn=serve or (lambda inputs: model(inputs, training=False)),
        input_signature=input_signature,
    )
    archive.write_out(str(partial), verbose=False)
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)  # Left by a kill between the renames below.
    if path.exists():
        path.rename(old)
    partial.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_endpoint(path: str | Path) -> Callable:
    """Loads an exported SavedModel and returns its `serve` endpoint.

    The endpoint keeps the loaded object (and so its variables) alive.

    Raises:
        InputError: `path` is not a SavedModel exported by this project.
    """
    path = Path(path)
    previous = path.with_name(path.name + ".old")
    if not path.exists() and (previous / "saved_model.pb").is_file():
        # export_saved_model was stopped between its two renames.
        raise InputError(f"--model {path}: the run stopped while replacing its export; rerun "
                         f"the run's command to finish it, or pass --model {previous} (the "
                         "export before)")
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "no such folder"
        raise InputError(f"--model {path}: {what}; pass the saved_model/ folder of a run "
                         "(the one holding saved_model.pb)")
    if not (path / "saved_model.pb").is_file():
        raise InputError(
            f"--model {path}: not a SavedModel folder (no saved_model.pb); pass the "
            "saved_model/ folder of a run"
        )
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TensorFlow raises many kinds for a damaged model.
        detail = " ".join(str(error).split()).split(". ")[0]  # TensorFlow's first sentence.
        detail = detail if len(detail) <= 120 else detail[:119] + "…"
        raise InputError(f"--model {path}: not a readable SavedModel ({type(error).__name__}: "
                         f"{detail}); export it again with run.py") from None
    if not hasattr(loaded, ENDPOINT):
        raise InputError(f"--model {path}: the SavedModel has no '{ENDPOINT}' endpoint")
    endpoint = getattr(loaded, ENDPOINT)
    endpoint.saved_model = loaded  # The variables die with the object otherwise.
    return endpoint


def input_specs(endpoint: Callable) -> list[tf.TensorSpec]:
    """The input spec of each signature a loaded endpoint accepts."""
    return [concrete.structured_input_signature[0][0]
            for concrete in endpoint.concrete_functions]


ONNX_CHECK_IMAGES = 1_000  # Test digits the ONNX export is compared on, against the SavedModel.
ONNX_TOLERANCE = 1e-5  # The largest difference in any probability the check lets pass.


def export_onnx(model: keras.Model, path: str | Path, serve: Callable,
                contract: Contract) -> Path:
    """Exports the serving function `serve` to ONNX, as `contract` describes it.

    `serve` (preprocessing and all, as the SavedModel's endpoint) is wrapped
    in a Keras model, so that `model.export(format="onnx")` converts the whole
    of it, not the bare network. The file is written beside `path` and moved
    into place only after onnxruntime has opened it and found the contract.

    Args:
        model: The trained model `serve` calls (tracked, so its weights are saved).
        path: The `.onnx` file to create or replace.
        serve: A `tf.function` traced for `contract`'s input (float32).
        contract: The input's name and shape, the output's name, the metadata.

    Returns:
        The ONNX file.
    """
    import onnx
    import onnxruntime

    from hw1_keras.onnx_serving import contract_mismatch

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    wrapper = _ServingModel(model, serve)
    wrapper(np.zeros([1 if dim is None else dim for dim in contract.input_shape], np.float32))
    with warnings.catch_warnings():
        # Keras' tf2onnx shim probes `np.object`, which NumPy answers with a
        # FutureWarning on every export; nothing for the user to act on.
        warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
        wrapper.export(str(partial), format="onnx", verbose=False, input_signature=[
            tf.TensorSpec(contract.input_shape, tf.float32, name=contract.input_name)])
    graph = onnx.load(str(partial))
    (output,) = graph.graph.output
    for node in graph.graph.node:  # tf2onnx names the output after TensorFlow's Identity op.
        node.output[:] = [contract.output_name if name == output.name else name
                          for name in node.output]
    output.name = contract.output_name
    onnx.helper.set_model_props(graph, contract.metadata)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(partial))
    session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
    mismatch = contract_mismatch(session, contract)
    if mismatch:  # The conversion itself went wrong: a bug, not bad input.
        raise RuntimeError(f"the ONNX export at {partial} departs from its contract: {mismatch}")
    partial.replace(path)
    return path


class _ServingModel(keras.Model):
    """A Keras model whose call is a serving function, for `model.export`."""

    def __init__(self, model: keras.Model, serve: Callable):
        # float32 whatever the global policy (a mixed-precision run keeps its
        # policy after training): Keras would cast the pixels to it.
        super().__init__(name="serving", dtype="float32")
        self.network = model  # Tracked: the export finds the weights through it.
        self.serve = serve

    def call(self, inputs):
        return self.serve(inputs)


def onnx_difference(onnx_path: str | Path, saved_model: str | Path, images: np.ndarray,
                    batch_size: int = 500) -> float:
    """The largest difference between the ONNX and the SavedModel exports' outputs.

    Both are loaded from their files, as a user would, and given the same
    `images` as they are (uint8 (N, 28, 28) for MNIST's test digits), the
    ONNX one through `onnx_serving.load_onnx`. The SavedModel runs on the
    CPU, as onnxruntime does: on a GPU, TensorFloat-32 convolutions would
    be measured instead of the export.
    """
    from hw1_keras.onnx_serving import load_onnx

    from_onnx = load_onnx(onnx_path)
    serve = load_endpoint(saved_model)
    largest = 0.0
    with tf.device("/CPU:0"):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            largest = max(largest, float(np.max(np.abs(
                from_onnx(batch) - serve(tf.constant(batch)).numpy()))))
    if largest > ONNX_TOLERANCE:
        print(f"warning: {onnx_path} differs from {saved_model} by up to {largest:.2g} in a "
              f"probability (tolerance {ONNX_TOLERANCE:g}); use the SavedModel", file=sys.stderr)
    return largest
