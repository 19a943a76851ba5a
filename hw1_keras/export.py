"""SavedModel export and loading, shared by every task."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from hw1_keras.errors import InputError

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


def export_onnx(model: keras.Model, path: str | Path, check_inputs) -> float:
    """Exports `model` to ONNX (`model.export(format="onnx")`) and checks it.

    The file is written beside `path` and moved into place only after
    onnxruntime has run it.

    Args:
        model: The model; its own input signature becomes the ONNX input.
        path: The `.onnx` file to create or replace.
        check_inputs: A batch to run through both Keras and onnxruntime.

    Returns:
        The largest absolute difference between the two outputs.
    """
    import numpy as np
    import onnxruntime

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with warnings.catch_warnings():
        # Keras' tf2onnx shim probes `np.object`, which NumPy answers with a
        # FutureWarning on every export; nothing for the user to act on.
        warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
        model.export(str(partial), format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
    (onnx_input,) = session.get_inputs()
    from_onnx = session.run(None, {onnx_input.name: check_inputs})[0]
    from_keras = np.asarray(model(check_inputs, training=False))
    partial.replace(path)
    return float(np.max(np.abs(from_onnx - from_keras)))
