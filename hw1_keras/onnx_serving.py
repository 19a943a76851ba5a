"""An MNIST run's `model.onnx`: its contract, and an adapter that serves it like the SavedModel.

`model.onnx` holds the same program as the `serve` endpoint of the run's
`saved_model/`: raw pixel values 0-255 in, the 10 class probabilities out,
the scaling and the softmax inside the graph. An ONNX graph input has one
element type and one rank, where the SavedModel accepts uint8 and float32
images of shape (N, 28, 28) and (N, 28, 28, 1); so the graph takes the
widest of them, float32 (N, 28, 28, 1), named `images`, and returns float32
(N, 10), named `probabilities`. Every input the SavedModel takes becomes
that one without changing a value (uint8 to float32 is exact; the channel
axis moves no pixel). With onnxruntime and NumPy alone::

    session = onnxruntime.InferenceSession("RUN/model.onnx")
    images = np.asarray(images, np.float32).reshape(len(images), 28, 28, 1)
    probabilities = session.run(["probabilities"], {"images": images})[0]

`load_onnx` does that, and refuses what the SavedModel refuses (other
dtypes, other shapes). At export the two are compared on 1,000 test digits
(`metrics.json`'s `onnx_max_abs_diff`, at most 1e-5).

This module imports neither TensorFlow nor Keras: `predict` on a `.onnx`
file starts in a fraction of TensorFlow's time.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from hw1_keras.errors import InputError


class Contract(NamedTuple):
    """What an exported ONNX graph takes and returns, as `export.export_onnx` writes it."""

    input_name: str
    input_shape: tuple[int | None, ...]  # None: any size (the batch).
    output_name: str
    metadata: dict[str, str]  # The ONNX file's metadata_props, which mark the contract.


TASK_KEY = "hw1_keras.task"
MNIST = Contract(
    input_name="images",
    input_shape=(None, 28, 28, 1),
    output_name="probabilities",
    metadata={TASK_KEY: "mnist",
              "hw1_keras.input": "float32 images (N, 28, 28, 1), pixel values 0-255",
              "hw1_keras.output": "float32 class probabilities (N, 10)"},
)
# What the adapter accepts, as the SavedModel's `serve` endpoint does.
SHAPES = ((None, 28, 28), (None, 28, 28, 1))
DTYPES = ("uint8", "float32")


def to_onnx_input(images: np.ndarray) -> np.ndarray:
    """Images as the SavedModel takes them -> the ONNX graph's float32 (N, 28, 28, 1).

    Raises:
        InputError: not uint8 or float32, or not of shape (N, 28, 28) or
            (N, 28, 28, 1).
    """
    images = np.asarray(images)
    if images.dtype.name not in DTYPES:
        raise InputError(f"images of dtype {images.dtype.name}; the model takes "
                         f"{' or '.join(DTYPES)} pixel values 0-255")
    if tuple(images.shape[1:]) not in [shape[1:] for shape in SHAPES]:
        raise InputError(f"images of shape {images.shape}; the model takes "
                         f"(N, 28, 28) or (N, 28, 28, 1)")
    return images.astype(np.float32, copy=False).reshape(len(images), 28, 28, 1)


class OnnxEndpoint:
    """An MNIST `model.onnx` run by onnxruntime, called like the SavedModel's `serve`.

    `endpoint(images)` takes uint8 or float32 images (N, 28, 28) or
    (N, 28, 28, 1), values 0-255, and returns the class probabilities as a
    float32 NumPy array (N, 10).
    """

    def __init__(self, session):
        self.session = session

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([MNIST.output_name],
                                {MNIST.input_name: to_onnx_input(images)})[0]


def load_onnx(path: str | Path) -> OnnxEndpoint:
    """Opens an MNIST run's `model.onnx` on the CPU.

    Raises:
        InputError: `path` is missing, a folder, not an ONNX model, or an
            ONNX model without the contract above (as exported before ONNX
            took the SavedModel's inputs: that one returned logits).
    """
    import onnxruntime

    path = Path(path)
    if path.is_dir():
        raise InputError(f"--model {path}: a folder, not an ONNX file; pass a run's "
                         "model.onnx or its saved_model/ folder")
    if not path.is_file():
        raise InputError(f"--model {path}: no such file; pass a run's model.onnx or its "
                         "saved_model/ folder")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # Errors only: a warning would bury predict's answers.
    try:
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own kinds for a damaged file.
        detail = " ".join(str(error).split())
        detail = detail if len(detail) <= 120 else detail[:119] + "…"
        raise InputError(f"--model {path}: not a readable ONNX model ({detail}); export "
                         "it again with run.py") from None
    if mismatch := contract_mismatch(session, MNIST):
        raise InputError(f"--model {path}: not an MNIST export of this project ({mismatch}); "
                         "a model.onnx from before ONNX served probabilities returns logits: "
                         "pass the run's saved_model/ folder instead")
    return OnnxEndpoint(session)


def contract_mismatch(session, contract: Contract) -> str:
    """How an onnxruntime session departs from `contract`; empty when it does not."""
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get(TASK_KEY) != contract.metadata[TASK_KEY]:
        return f"no {TASK_KEY}={contract.metadata[TASK_KEY]} in its metadata"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = tuple(dim if isinstance(dim, int) else None for dim in inputs[0].shape)
    if ([put.name for put in inputs] != [contract.input_name] or inputs[0].type != "tensor(float)"
            or shape != contract.input_shape):
        return (f"takes {', '.join(f'{put.name} {put.type} {put.shape}' for put in inputs)}, "
                f"not {contract.input_name} tensor(float) {list(contract.input_shape)}")
    if [put.name for put in outputs] != [contract.output_name]:
        return f"returns {', '.join(put.name for put in outputs)}, not {contract.output_name}"
    return ""
