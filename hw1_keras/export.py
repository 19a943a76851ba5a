"""SavedModel export and loading, shared by every task."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from hw1_keras.errors import InputError

ENDPOINT = "serve"


def export_saved_model(
    model: keras.Model,
    path: str | Path,
    input_signature: list[tf.TensorSpec],
    serve: Callable | None = None,
) -> Path:
    """Exports `model` as a SavedModel with one deterministic `serve` endpoint.

    The export is written beside `path` first and moved into place at the end,
    so an interrupted export never leaves a half-written model where a good one
    was.

    Args:
        model: The trained model (tracked, so its variables are saved).
        path: The SavedModel folder to create or replace.
        input_signature: The endpoint's input specs.
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
    if path.exists():
        path.rename(old)
    partial.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_endpoint(path: str | Path) -> Callable:
    """Loads an exported SavedModel and returns its `serve` endpoint.

    Raises:
        InputError: `path` is not a SavedModel exported by this project.
    """
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise InputError(
            f"--model {path}: not a SavedModel folder (no saved_model.pb); pass the "
            "saved_model/ folder of a run"
        )
    loaded = tf.saved_model.load(str(path))
    if not hasattr(loaded, ENDPOINT):
        raise InputError(f"--model {path}: the SavedModel has no '{ENDPOINT}' endpoint")
    return getattr(loaded, ENDPOINT)


def input_spec(endpoint: Callable) -> tf.TensorSpec:
    """The (first) input spec of a loaded endpoint."""
    concrete = endpoint.concrete_functions[0]
    args, _ = concrete.structured_input_signature
    return args[0]
