"""Many optimizer steps per compiled call, for models too small to keep a CPU busy.

A 1.2k-parameter MLP spends almost all of a plain `fit()` step in per-step
overhead (Python, the tf.data iterator, launching the graph): about 1 ms a step,
so the homework's 100,000 steps took 115 s on 2 cores (BENCHMARKS.md). Here each compiled
call runs a whole block of epochs instead:

* `epoch_blocks()` builds a `tf.data` pipeline whose every element is a block
  of `epochs_per_call` epochs, each epoch a fresh seeded permutation of the
  in-memory data cut into mini-batches: shape (steps, batch, ...).
* `MultiStepTrainer` wraps the model; its `train_step` loops over the block's
  mini-batches inside one XLA-compiled `tf.while_loop`, one optimizer step per
  mini-batch, exactly as `fit()` would, without leaving the compiled program.

The result is the same mini-batch SGD as `fit(x, y, shuffle=True)`, about ten
times faster (see BENCHMARKS.md). Under a `tf.distribute` strategy, which cannot
replicate the loop, `fit_replicated` trains on the same blocks with Keras'
own step. A last partial batch is kept, as PyTorch's
`DataLoader` does: it is padded to the batch shape with zero sample weights and
its loss averaged over its real samples only.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from hw1_keras import replicas


def epoch_blocks(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    epochs_per_call: int,
    seed: int,
) -> tf.data.Dataset:
    """A dataset of blocks of shuffled mini-batches, one block per compiled call.

    Args:
        x: Inputs, shape (N, ...).
        y: Targets, shape (N, ...).
        batch_size: Samples per optimizer step; the last batch of an epoch holds
            the remainder when it does not divide N.
        epochs: Total passes over the data; the dataset ends after them.
        epochs_per_call: Epochs per element; the last element holds the rest.
        seed: Seeds the permutations; epoch e uses `[seed, e]`, so the order
            does not depend on how epochs are grouped into calls.

    Returns:
        A dataset of `(x, y, sample_weight)` with shapes `(S, batch_size, ...)`,
        `(S, batch_size, ...)` and `(S, batch_size)`, where S is the number of
        steps in the block.
    """
    count = len(x)
    steps_per_epoch = math.ceil(count / batch_size)
    padding = steps_per_epoch * batch_size - count
    x = tf.constant(x)
    y = tf.constant(y)

    def one_epoch(epoch):
        order = tf.argsort(tf.random.stateless_uniform([count], seed=tf.stack([seed, epoch])))
        order = tf.concat([order, tf.zeros([padding], order.dtype)], axis=0)
        weight = tf.concat([tf.ones([count]), tf.zeros([padding])], axis=0)
        cut = lambda t: tf.reshape(t, [steps_per_epoch, batch_size, *t.shape[1:]])  # noqa: E731
        return cut(tf.gather(x, order)), cut(tf.gather(y, order)), cut(weight)

    return blocks_of_epochs(one_epoch, epochs=epochs, epochs_per_call=epochs_per_call)


def blocks_of_epochs(one_epoch, *, epochs: int, epochs_per_call: int) -> tf.data.Dataset:
    """`one_epoch(epoch)`'s tensors for every epoch, `epochs_per_call` epochs to an element.

    Each tensor's first axis (an epoch's steps) runs on across the epochs of
    an element; the last element holds the rest.
    """
    def merge_epochs(*tensors):
        return tuple(tf.reshape(t, [-1, *t.shape[2:]]) for t in tensors)

    return (
        tf.data.Dataset.range(epochs)
        .map(one_epoch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(epochs_per_call)
        .map(merge_epochs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


class MultiStepTrainer(keras.Model):
    """Trains `network` on blocks of mini-batches from `epoch_blocks()`.

    Each `train_step` runs one optimizer step per mini-batch of its block.
    Logged metrics: `loss` (the objective: data loss plus the layers'
    regularization penalties) and `<loss_name>` (the data loss alone), each
    averaged over the steps since the start of the Keras epoch. `test_step`
    evaluates `network` in inference mode on ordinary `(x, y)` batches.

    Args:
        network: The model to train; it is updated in place.
        loss: A per-sample loss function `(y_true, y_pred) -> (batch,)`.
        loss_name: The name the data loss is logged under.
    """

    def __init__(self, network: keras.Model, loss=keras.losses.mean_squared_error,
                 loss_name: str = "mse", **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.per_sample_loss = loss
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.data_loss_tracker = keras.metrics.Mean(name=loss_name)
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.data_loss_tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # Slots must exist before the first call is traced under XLA.
        self.optimizer.build(self.network.trainable_variables)

    def weighted_data_loss(self, y, prediction, weight):
        """The mini-batch's data loss: the mean over its real (weight 1) samples.

        Subclasses that train several problems at once override this and
        `track_data_loss` to keep one loss per problem.
        """
        per_sample = self.per_sample_loss(y, prediction)
        return tf.reduce_sum(per_sample * weight) / tf.reduce_sum(weight)

    def track_data_loss(self, data_loss):
        """Records a data loss from `weighted_data_loss` in the logged metrics."""
        self.data_loss_tracker.update_state(data_loss)

    def track_loss(self, loss):
        """Records a step's objective in the logged `loss`."""
        self.loss_tracker.update_state(loss)

    def penalty(self):
        """The network's regularization penalties (0 when it has none)."""
        return tf.add_n(self.network.losses) if self.network.losses else 0.0

    def _one_step(self, x, y, weight):
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            data_loss = self.weighted_data_loss(y, self.network(x, training=True), weight)
            # A sum over problems when there are several: each one's gradient is
            # then that problem's alone.
            loss = tf.reduce_sum(data_loss) + self.penalty()
            # Identity, except under mixed precision: the loss-scale optimizer's scale.
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.track_loss(loss)
        self.track_data_loss(data_loss)

    def train_step(self, data):
        xs, ys, weights = data

        def body(step):
            self._one_step(xs[step], ys[step], weights[step])
            return (step + 1,)

        tf.while_loop(lambda step: step < tf.shape(xs)[0], body, (tf.constant(0),))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[:2]
        prediction = self.network(x, training=False)
        data_loss = tf.reduce_mean(self.per_sample_loss(y, prediction))
        self.loss_tracker.update_state(data_loss + self.penalty(), sample_weight=tf.shape(x)[0])
        self.data_loss_tracker.update_state(data_loss, sample_weight=tf.shape(x)[0])
        return {m.name: m.result() for m in self.metrics}


def fit_replicated(model: keras.Model, blocks: tf.data.Dataset, steps_per_block: int, *,
                   epochs: int, last_block_steps: int, **kwargs):
    """Trains `model` on `epoch_blocks` under a strategy, with Keras' own replicated step.

    The multi-step loop cannot be replicated (a strategy would split its
    blocks' first axis, the steps, instead of each mini-batch), so each
    block is unrolled into its mini-batches, one Keras epoch per block.
    Padding rows keep their zero sample weight, and the real rows' weight
    is raised to (batch rows / real rows): each replica divides its
    weighted sum by all its rows, padding included, so this makes a short
    last batch's step the mean over its real samples, as on one device.
    The logged `mse` is a weighted metric for the same reason: unweighted,
    it would average the padding rows in as data.
    One step per call: with Keras 3.15 / TF 2.21, `steps_per_execution` > 1
    under MirroredStrategy fails ("You must feed a value for placeholder
    tensor"). A last block shorter than the others (`log_every` does not
    divide the epochs) gets a `fit` of its own: as one more Keras epoch of
    `steps_per_block` steps, its data would run out, and Keras would count
    an extra, empty step (1,001 optimizer steps for 1,000) and average its
    loss over one step too many.

    Args:
        model: Built and compiled in the strategy's scope.
        blocks: `epoch_blocks`' dataset.
        steps_per_block: Optimizer steps in each full block.
        epochs: Blocks (Keras epochs) in all.
        last_block_steps: Steps in the last block.
        **kwargs: Passed on to `model.fit` (validation data, callbacks, ...).

    Returns:
        The Keras `History`, one entry per block.
    """

    def mean_over_real_rows(x, y, weight):
        rows = tf.cast(tf.shape(weight)[0], weight.dtype)
        return x, y, weight * (rows / tf.reduce_sum(weight))

    def unrolled(some_blocks):
        return some_blocks.flat_map(
            lambda xs, ys, ws: tf.data.Dataset.from_tensor_slices((xs, ys, ws))
        ).map(mean_over_real_rows)

    model.compile(optimizer=model.optimizer, loss="mse", weighted_metrics=["mse"],
                  jit_compile=False)
    replicas.prepare_fit(model, unrolled(blocks))
    if last_block_steps == steps_per_block:
        return model.fit(unrolled(blocks), epochs=epochs, steps_per_epoch=steps_per_block,
                         shuffle=False, **kwargs)
    history = model.fit(unrolled(blocks.take(epochs - 1)), epochs=epochs - 1,
                        steps_per_epoch=steps_per_block, shuffle=False, **kwargs)
    last = model.fit(unrolled(blocks.skip(epochs - 1)), initial_epoch=epochs - 1,
                     epochs=epochs, steps_per_epoch=last_block_steps, shuffle=False,
                     **kwargs)
    for name, values in last.history.items():
        history.history.setdefault(name, []).extend(values)
    history.epoch += last.epoch
    return history
