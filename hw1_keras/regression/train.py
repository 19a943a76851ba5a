"""`python run.py regression`: train, measure, plot and export in one run folder."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hw1_keras import devices, plots, stacked, task
from hw1_keras.errors import InputError
from hw1_keras.export import export_saved_model
from hw1_keras.regression import data as regression_data
from hw1_keras.regression.config import RegressionConfig
from hw1_keras.regression.model import RegressionHyperModel, epochs_per_call, hyperparameters
from hw1_keras.task import Trained
from hw1_keras.training import ProgressLine, divergence_callbacks, seed_everything

# A spacing between neighbouring training points counts as a dark interval in
# users' data when it is this much wider than the median spacing...
GAP_SPACING_FACTOR = 5.0
# ...and at least this fraction of the data's x range.
GAP_MIN_FRACTION = 0.05


def find_gaps(x: np.ndarray) -> list[tuple[float, float]]:
    """Dark intervals of users' training data: unusually wide empty stretches."""
    x = np.sort(np.asarray(x).ravel())
    spacing = np.diff(x)
    if len(spacing) < 2:
        return []
    threshold = max(GAP_SPACING_FACTOR * np.median(spacing), GAP_MIN_FRACTION * (x[-1] - x[0]))
    return [(float(x[i]), float(x[i + 1])) for i in np.flatnonzero(spacing > threshold)]


def _mse(prediction: np.ndarray, target: np.ndarray) -> float | None:
    return float(np.mean((prediction - target) ** 2)) if len(target) else None


def evaluate(model, train, test, gaps) -> dict:
    """Train and test MSE, the test MSE split into inside and outside the gaps."""
    train_prediction = model.predict(train.x, verbose=0)
    test_prediction = model.predict(test.x, verbose=0)
    inside = regression_data.in_gaps(test.x, gaps) if gaps else np.zeros(len(test), bool)
    return {
        "train_mse": _mse(train_prediction, train.y),
        "test_mse": _mse(test_prediction, test.y),
        "test_mse_gaps": _mse(test_prediction[inside], test.y[inside]),
        "test_mse_outside": _mse(test_prediction[~inside], test.y[~inside]),
        "test_points_in_gaps": int(inside.sum()),
    }


def noise_floor(test) -> dict:
    """The best test MSE any model can reach on the embedded data: the noise."""
    residual = test.y[:, 0] - regression_data.target_function(test.x[:, 0])
    return {
        "test_noise_variance": regression_data.TEST_NOISE_SD**2,
        "test_noise_mse_realized": float(np.mean(residual**2)),
    }


def train_model(config: RegressionConfig, train, test, *, verbose: bool = True,
                jit_compile: bool = True):
    """Builds and trains the configured model.

    Args:
        config: The run's configuration.
        train: Training split.
        test: Test split, used only to log the test MSE on the learning curve;
            it never steers training (no early stopping, no selection).
        verbose: Print a progress line every few seconds.
        jit_compile: XLA-compile the training loop.

    Returns:
        `(model, history, seconds)`, trained here on one device (`python run.py
        regression` goes through `RegressionTask`, which may distribute).
    """
    trained = _train(config, train, test, verbose=verbose, jit_compile=jit_compile)
    return trained.model, trained.details["history"], trained.details["seconds"]


def _train(config, train, test, *, verbose=True, jit_compile=True, runtime=None) -> Trained:
    seed_everything(config.seed)
    if runtime is not None:
        jit_compile = runtime.policy.jit
        devices.check_batch(min(config.batch_size, len(train)), runtime.policy)
    hypermodel = RegressionHyperModel(epochs=config.epochs, log_every=config.log_every,
                                      seed=config.seed, jit_compile=jit_compile)
    hp = hyperparameters(config)
    block = epochs_per_call(config.epochs, config.log_every)
    callbacks = [ProgressLine(config.epochs, block)] if verbose else []
    callbacks += divergence_callbacks(config, data=(train.x, train.y),
                                      epochs_per_keras_epoch=block)
    if config.ensemble > 1:
        return _train_ensemble(config, hypermodel, hp, train, test, callbacks, runtime)
    scope = runtime.strategy.scope() if runtime is not None else contextlib.nullcontext()
    with scope:
        model = hypermodel.build(hp)
        start = time.perf_counter()
        history = hypermodel.fit(hp, model, train.x, train.y,
                                 validation_data=(test.x, test.y), callbacks=callbacks)
    return Trained(model, lambda: hypermodel.build(hp),
                   {"history": history, "seconds": time.perf_counter() - start})


def _train_ensemble(config, hypermodel, hp, train, test, callbacks, runtime):
    """`train_model` for `--ensemble K`: K seeded copies side by side, then their mean.

    Copy i is built after seeding with `config.seed + i` and shuffles with the
    same seed, so copy 0 is the single run's network.
    """
    if runtime is not None and runtime.policy.replicas > 1:
        raise InputError(f"--ensemble {config.ensemble} trains its copies side by side on "
                         "one device; leave out --distribute (or pass --distribute none)")
    members = []
    for index in range(config.ensemble):
        seed_everything(config.seed + index)
        members.append(hypermodel.build(hp))
    start = time.perf_counter()
    history = hypermodel.fit_ensemble(hp, members, train.x, train.y,
                                      validation_data=(test.x, test.y), callbacks=callbacks)
    # Trained outside any strategy: the average is kept as it is.
    return Trained(stacked.averaged(members), None,
                   {"history": history, "seconds": time.perf_counter() - start})


def members(model) -> list:
    """The networks of an ensemble from `--ensemble`, or `[model]` for a single one."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner or [model]


def plot_fit(model, train, test, gaps, path, *, embedded: bool) -> Path:
    """The fitted curve with training and test points, gaps shaded (fig. 2a)."""
    low = float(min(train.x.min(), test.x.min()))
    high = float(max(train.x.max(), test.x.max()))
    if embedded:
        low, high = regression_data.X_RANGE
    grid = np.linspace(low, high, 500, dtype=np.float32).reshape(-1, 1)
    figure, axes = plots.plt.subplots(figsize=(8, 4.8))
    for index, (start, stop) in enumerate(gaps):
        axes.axvspan(start, stop, color="0.9", label="dark interval" if index == 0 else None)
    if embedded:
        axes.plot(grid, regression_data.target_function(grid), ":", color="0.4",
                  label="true function")
    axes.scatter(train.x, train.y, s=14, label=f"train ({len(train)})")
    axes.scatter(test.x, test.y, s=14, marker="x", label=f"test ({len(test)})")
    axes.plot(grid, model.predict(grid, verbose=0), color="crimson", lw=2, label="model")
    axes.set_xlabel("input")
    axes.set_ylabel("label")
    axes.set_title("Regression fit")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return plots.save(figure, path)


def plot_losses(history, epochs_per_call: int, total_epochs: int, path) -> Path:
    """Training objective, training MSE and test MSE per logged block (log scale)."""
    logged = history.history
    epochs = [min((i + 1) * epochs_per_call, total_epochs) for i in range(len(logged["loss"]))]
    return plots.learning_curves(
        epochs,
        {
            "train loss (MSE + L2)": logged["loss"],
            "train MSE": logged["mse"],
            "test MSE (monitoring only)": logged["val_mse"],
        },
        path, ylabel="loss (train: mean over each block)", title="Learning curve", log_y=True,
    )


def load_data(config: RegressionConfig) -> tuple:
    """The run's data: `(train, test, gaps, embedded)`; raises `InputError` on bad files."""
    embedded = config.train is None
    train, test = regression_data.load(config.train, config.test, config.data_seed)
    gaps = list(regression_data.GAPS) if embedded else find_gaps(train.x)
    return train, test, gaps, embedded


class RegressionTask(task.Task):
    """The regression's steps for `hw1_keras.task`: the homework's run, end to end."""

    name = "regression"

    def load(self, config: RegressionConfig) -> tuple:
        return load_data(config)

    def batch_size(self, config: RegressionConfig, data: tuple) -> int:
        return min(config.batch_size, len(data[0]))  # Keras takes a batch no bigger than the data.

    def train(self, config, data, run_dir, *, runtime, chief_dir) -> Trained:
        train, test, _, _ = data
        if runtime is None or runtime.is_chief:
            print(f"regression: {len(train)} train / {len(test)} test points -> {run_dir}")
        trained = _train(config, train, test, runtime=runtime)
        loss = trained.details["history"].history["loss"][-1]
        if not np.isfinite(loss):
            raise InputError(
                f"training diverged (loss {loss}) with --lr {config.learning_rate:g}; try a "
                f"smaller one, e.g. --lr {config.learning_rate / 10:g}, and check that the "
                "data's values are not huge")
        return trained

    def results(self, config, model, data, trained, run_dir) -> dict:
        train, test, gaps, embedded = data
        history = trained.details["history"]
        regression_data.write_csv(train, run_dir / "train_data.csv")
        regression_data.write_csv(test, run_dir / "test_data.csv")
        block = epochs_per_call(config.epochs, config.log_every)
        plot_fit(model, train, test, gaps, run_dir / "fit.png", embedded=embedded)
        plots.weight_histograms(members(model)[0], run_dir / "weights.png")
        plot_losses(history, block, config.epochs, run_dir / "loss.png")
        plots.activation_function(config.activations[0],
                                  run_dir / f"{config.activations[0]}.png")
        export_saved_model(model, run_dir / "saved_model",
                           [tf.TensorSpec((None, 1), tf.float32, name="x")])
        return {
            **evaluate(model, train, test, gaps),
            **(noise_floor(test) if embedded else {}),
            "gaps": gaps,
            "train_seconds": trained.details["seconds"],
            "optimizer_steps": int(history.model.optimizer.iterations.numpy()),
            # Per logged block of epochs: the learning curve behind loss.png.
            "history": {key: [float(v) for v in values]
                        for key, values in history.history.items()},
            "data": "embedded" if embedded else {"train": config.train, "test": config.test},
        }

    def summary(self, metrics: dict) -> str:
        return (f"train MSE {metrics['train_mse']:.4f}  test MSE {metrics['test_mse']:.4f}  "
                f"(gaps {_show(metrics['test_mse_gaps'])}, "
                f"outside {_show(metrics['test_mse_outside'])})  {metrics['parameters']} "
                f"parameters, trained in {metrics['train_seconds']:.1f}s")


TASK = RegressionTask()


def run(config: RegressionConfig, out: str | None = None,
        device: devices.DeviceConfig | None = None) -> dict:
    """Trains, evaluates, plots and exports one regression run (`hw1_keras.task.run`)."""
    return task.run(TASK, config, out, device)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
