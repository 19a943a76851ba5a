"""hw1_keras: the classic deep-learning homework, rebuilt in Keras 3.

Two tasks share one skeleton (configuration, run folder, training helpers,
export, plots):

* `hw1_keras.regression`: a small MLP that learns a 1-D function from 100 noisy
  samples with two "dark intervals".
* `hw1_keras.mnist` (see the MNIST issue): a CNN for handwritten digits.
"""

__version__ = "0.1.0"
