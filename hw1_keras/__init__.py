"""hw1_keras: the classic deep-learning homework, rebuilt in Keras 3.

The two tasks, each read like the homework (data, model, training, plots):

* `hw1_keras.regression`: a small MLP that learns a 1-D function from 100 noisy
  samples with two "dark intervals".
* `hw1_keras.mnist`: a CNN for handwritten digits.

Beside them, what they share: configuration (`config`), the run folder and
resume (`runs`, `training`), devices and distribution (`devices`, `cluster`),
export and serving (`export`, `onnx_serving`, `predict`), and reading photos
of digits (`photos`, no Keras inside). The searches are in `tuning/`, the
benchmarks in `benchmarks/`, which the library never imports.
"""

__version__ = "0.1.0"
