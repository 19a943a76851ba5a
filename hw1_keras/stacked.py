"""k copies of a small Dense network trained side by side in one compiled loop.

k-fold cross-validation trains one architecture k times, on k training sets.
For a 1k-parameter MLP an optimizer step costs almost nothing but overhead, so
k sequential trainings cost k times the overhead. Here the k copies become one
network whose every kernel `(in, out)` is stacked into `(k, in, out)`: one
einsum does the k forward passes, one XLA-compiled loop (`MultiStepTrainer`)
the k trainings.

The copies stay exactly independent:

* the loss is the *sum* of each copy's loss (its weighted mean data loss plus
  its own L2 penalty), so the gradient of slice i is copy i's gradient alone;
* Adam and L2 penalties act element by element, so one Adam over the stacked
  variables is k Adams, one per copy; they share only the step count, which
  every copy advances together, as each runs one step per loop iteration.

That last point is why every copy must take the same number of steps per epoch
(`stacked_epoch_blocks` checks it).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from hw1_keras.multistep import MultiStepTrainer, blocks_of_epochs, epoch_blocks


def dense_chain(model: keras.Model) -> list[layers.Dense]:
    """The Dense layers of a model that is nothing but a chain of Dense layers.

    Raises:
        ValueError: the model has another kind of layer (or an activity
            regularizer), which the stacked network does not reproduce.
    """
    chain = []
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        if type(layer) is not layers.Dense or layer.activity_regularizer is not None:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}): only chains of plain "
                "Dense layers can be stacked"
            )
        chain.append(layer)
    if not chain:
        raise ValueError(f"model {model.name!r} has no Dense layer to stack")
    return chain


def _architecture(chain: list[layers.Dense]) -> list[tuple]:
    return [(tuple(layer.kernel.shape), layer.use_bias, layer.activation) for layer in chain]


class StackedNetwork(keras.Model):
    """k Dense networks of one architecture as one network on `(k, batch, in)` inputs.

    The stacked variables start as copies of the networks' weights, so each
    copy starts exactly where its network stands (same initialization as when
    training the networks one by one); `write_back()` copies them back.

    Args:
        networks: Models with identical chains of Dense layers (see
            `dense_chain`); each keeps its own weights until `write_back()`.
    """

    def __init__(self, networks: list[keras.Model], **kwargs):
        # Each stacked layer computes in the dtype of the layer it stacks (under
        # a mixed policy the output layer stays float32), so nothing is autocast
        # to this model's own dtype: `call` casts per layer instead.
        super().__init__(autocast=False, **kwargs)
        # Set around Keras' attribute tracking, which would otherwise add the
        # networks' own weights to this model's trainable variables.
        object.__setattr__(self, "chains", [dense_chain(network) for network in networks])
        first = self.chains[0]
        if any(_architecture(chain) != _architecture(first) for chain in self.chains[1:]):
            raise ValueError("the networks to stack differ in architecture")
        self.activations = [layer.activation for layer in first]
        self.compute_dtypes = [layer.compute_dtype for layer in first]
        self.stacked_kernels, self.stacked_biases = [], []
        for index, layer in enumerate(first):
            self.stacked_kernels.append(self._stack(
                f"kernel_{index}", [chain[index].kernel for chain in self.chains],
                layer.kernel_regularizer))
            self.stacked_biases.append(self._stack(
                f"bias_{index}", [chain[index].bias for chain in self.chains],
                layer.bias_regularizer) if layer.use_bias else None)
        self.built = True

    @property
    def copies(self) -> int:
        """k: how many networks are stacked."""
        return len(self.chains)

    def _stack(self, name, variables, regularizer):
        value = np.stack([np.asarray(variable) for variable in variables])
        # A penalty on the stacked variable is the sum of the copies' penalties.
        weight = self.add_weight(shape=value.shape, name=name, initializer="zeros",
                                 regularizer=regularizer)
        weight.assign(value)
        return weight

    def call(self, inputs, training=False):
        hidden = inputs
        for kernel, bias, activation, dtype in zip(self.stacked_kernels, self.stacked_biases,
                                                   self.activations, self.compute_dtypes):
            hidden = keras.ops.einsum("kbi,kio->kbo", keras.ops.cast(hidden, dtype),
                                      keras.ops.cast(kernel, dtype))
            if bias is not None:
                hidden = hidden + keras.ops.cast(bias, dtype)[:, None, :]
            hidden = activation(hidden)
        return hidden

    def write_back(self) -> None:
        """Copies each slice of the stacked weights into its own network."""
        for copy, chain in enumerate(self.chains):
            for layer, kernel, bias in zip(chain, self.stacked_kernels, self.stacked_biases):
                layer.kernel.assign(kernel[copy])
                if bias is not None:
                    layer.bias.assign(bias[copy])


class StackedTrainer(MultiStepTrainer):
    """`MultiStepTrainer` for a `StackedNetwork`: one loss per copy.

    Training and validation data have a copy axis after the step axis:
    `(steps, k, batch, ...)` blocks from `stacked_epoch_blocks`, and one
    `(x, y, sample_weight)` of shapes `(k, n, ...)`, `(k, n, ...)`, `(k, n)`
    from `stacked_validation`. Logged: `loss` (the sum of the copies'
    objectives) and `<loss_name>_<i>`, copy i's data loss.
    """

    def __init__(self, network: StackedNetwork, loss=keras.losses.mean_squared_error,
                 loss_name: str = "mse", **kwargs):
        super().__init__(network, loss=loss, loss_name=loss_name, **kwargs)
        self.copy_trackers = [keras.metrics.Mean(name=f"{loss_name}_{copy}")
                              for copy in range(network.copies)]

    @property
    def metrics(self):
        return [self.loss_tracker, *self.copy_trackers]

    def weighted_data_loss(self, y, prediction, weight):
        """Each copy's mean loss over its real samples: shape (k,)."""
        per_sample = self.per_sample_loss(y, prediction)
        return tf.reduce_sum(per_sample * weight, axis=1) / tf.reduce_sum(weight, axis=1)

    def track_data_loss(self, data_loss):
        for copy, tracker in enumerate(self.copy_trackers):
            tracker.update_state(data_loss[copy])

    def test_step(self, data):
        x, y, weight = data
        data_loss = self.weighted_data_loss(y, self.network(x, training=False), weight)
        self.loss_tracker.update_state(tf.reduce_sum(data_loss) + self.penalty())
        self.track_data_loss(data_loss)
        return {m.name: m.result() for m in self.metrics}


class EnsembleTrainer(StackedTrainer):
    """`StackedTrainer` for k copies of one model on one training set: an ensemble.

    Each copy still follows its own gradient (the summed loss), but the logs
    are the ensemble's: `loss` and `<loss_name>` the copies' means in
    training, and in validation the loss of the copies' averaged prediction,
    which is what the exported ensemble answers. Validation data are plain
    `(x, y)` batches, shared by every copy.
    """

    @property
    def metrics(self):
        return [self.loss_tracker, self.data_loss_tracker]

    def track_data_loss(self, data_loss):
        self.data_loss_tracker.update_state(tf.reduce_mean(data_loss))

    def track_loss(self, loss):
        self.loss_tracker.update_state(loss / self.network.copies)

    def test_step(self, data):
        x, y = data[:2]
        copies = tf.broadcast_to(x[None], [self.network.copies, *tf.unstack(tf.shape(x))])
        prediction = tf.reduce_mean(self.network(copies, training=False), axis=0)
        data_loss = tf.reduce_mean(self.per_sample_loss(y, prediction))
        rows = tf.shape(x)[0]
        self.loss_tracker.update_state(data_loss + self.penalty() / self.network.copies,
                                       sample_weight=rows)
        self.data_loss_tracker.update_state(data_loss, sample_weight=rows)
        return {m.name: m.result() for m in self.metrics}


def averaged(networks: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One Functional model whose output is the mean of `networks`' outputs."""
    inputs = keras.Input(shape=networks[0].input_shape[1:], name=networks[0].inputs[0].name)
    # Each network under a name of its own (a model's names must be unique),
    # sharing its layers and so its trained weights.
    named = [keras.Model(network.inputs[0], network.outputs[0], name=f"member_{index}")
             for index, network in enumerate(networks)]
    outputs = layers.Average(name="mean")([network(inputs) for network in named])
    return keras.Model(inputs, outputs, name=name)


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of `count` samples, the last batch partial."""
    return math.ceil(count / batch_size)


def stacked_epoch_blocks(xs, ys, *, batch_size: int, epochs: int, epochs_per_call: int,
                         seed: int | list[int]) -> tf.data.Dataset:
    """`epoch_blocks` of k training sets, stacked on a copy axis after the step axis.

    Copy i's mini-batches are exactly those `epoch_blocks(xs[i], ys[i], ...)`
    gives with the same seed (`seed[i]` when one is given per copy), so
    training copy i here matches training it alone.

    Raises:
        ValueError: the sets take different numbers of steps per epoch at this
            batch size (the copies would fall out of step; see the module doc).
    """
    steps = {steps_per_epoch(len(x), batch_size) for x in xs}
    if len(steps) != 1:
        raise ValueError(
            f"training sets of sizes {[len(x) for x in xs]} take {sorted(steps)} steps per "
            f"epoch at batch size {batch_size}; stacking needs the same number"
        )
    seeds = [seed] * len(xs) if isinstance(seed, int) else list(seed)
    if len({len(x) for x in xs}) == 1:
        return _equal_size_blocks(xs, ys, seeds, batch_size=batch_size, epochs=epochs,
                                  epochs_per_call=epochs_per_call)
    parts = tuple(
        epoch_blocks(x, y, batch_size=batch_size, epochs=epochs,
                     epochs_per_call=epochs_per_call, seed=copy_seed)
        for x, y, copy_seed in zip(xs, ys, seeds)
    )

    def stack(*copies):
        return tuple(tf.stack(tensors, axis=1) for tensors in zip(*copies))

    return tf.data.Dataset.zip(parts).map(stack)


def _equal_size_blocks(xs, ys, seeds: list[int], *, batch_size: int, epochs: int,
                       epochs_per_call: int) -> tf.data.Dataset:
    """`stacked_epoch_blocks` for sets of one size (an ensemble's, equal folds): one pipeline.

    The same blocks as zipping k `epoch_blocks` pipelines, from the same draws
    (`[seed_i, epoch]` for copy i), but each epoch's k orders are sorted and
    gathered at once. The per-element cost of a tf.data pipeline, not the
    network, is what k copies of a 1k-parameter network pay for: zipped, five
    copies' batches took 4.6 times one copy's.
    """
    copies, count = len(xs), len(xs[0])
    steps = steps_per_epoch(count, batch_size)
    padding = steps * batch_size - count
    x, y = tf.constant(np.stack(xs)), tf.constant(np.stack(ys))
    seeds = tf.constant(seeds, tf.int64)

    def cut(t):  # (k, steps * batch, ...) -> (steps, k, batch, ...)
        t = tf.reshape(t, [copies, steps, batch_size, *t.shape[2:]])
        return tf.transpose(t, [1, 0, *range(2, len(t.shape))])

    # The same every epoch: 1 for each real sample, 0 for the padding.
    weight = cut(tf.constant(np.repeat([[1.0] * count + [0.0] * padding], copies, axis=0),
                             tf.float32))

    def one_epoch(epoch):
        noise = tf.stack([tf.random.stateless_uniform([count], seed=tf.stack([seeds[i], epoch]))
                          for i in range(copies)])
        order = tf.argsort(noise, axis=1)  # Ties keep index order, as for one copy.
        if padding:
            order = tf.concat([order, tf.zeros([copies, padding], order.dtype)], axis=1)
        return (cut(tf.gather(x, order, batch_dims=1)), cut(tf.gather(y, order, batch_dims=1)),
                weight)

    return blocks_of_epochs(one_epoch, epochs=epochs, epochs_per_call=epochs_per_call)


def stacked_validation(xs, ys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k validation sets padded to one shape, with 0/1 weights marking real samples."""
    size = max(len(x) for x in xs)

    def pad(array):
        array = np.asarray(array, np.float32)
        return np.concatenate([array, np.zeros((size - len(array), *array.shape[1:]),
                                               np.float32)])

    weights = [np.concatenate([np.ones(len(x)), np.zeros(size - len(x))]) for x in xs]
    return (np.stack([pad(x) for x in xs]), np.stack([pad(y) for y in ys]),
            np.stack(weights).astype(np.float32))
