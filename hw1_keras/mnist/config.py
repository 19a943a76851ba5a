"""The MNIST task's configuration."""

from __future__ import annotations

import dataclasses
import math

from hw1_keras.config import (
    absolute_path, option, require, require_count, require_network_fits, require_seed,
)

DOWNSAMPLING = ("maxpool", "stride")
IMAGE_SIDE = 28
CLASSES = 10
# Test images go through the network 512 at a time
# (`hw1_keras.mnist.pipeline.evaluation_dataset`): with a smaller training
# batch, those are its largest batches.
EVALUATION_BATCH = 512


@dataclasses.dataclass(frozen=True)
class MnistConfig:
    """Everything that decides an MNIST run; `metrics.json` records it.

    `data` is made absolute, so that a rerun (or resumed search) from another
    directory is recognized as the same run.
    """

    seed: int = option(0, "seeds the split, weight init, batch order and augmentation")
    data: str | None = option(
        None, "a local .npz in keras.datasets.mnist layout; default: download with Keras"
    )
    epochs: int = option(
        20, "each epoch is 96k images (48k originals + a fresh augmented copy), about "
        "a minute on 2 CPU cores; 20 fit the 30-minute budget with room to spare"
    )
    batch_size: int = option(128, "the homework's best batch size in its batch-size study")
    learning_rate: float = option(
        2e-3, "AdamW's peak rate, reached after a 1-epoch warm-up, then cosine decay",
        flag="--lr",
    )
    weight_decay: float = option(
        0.05, "AdamW's decoupled decay (each step shrinks the weights by lr x 0.05): "
        "the regularizer that measurably helped the 3.2M-weight dense layer; 1e-4 and "
        "5e-3 did not (BENCHMARKS.md)"
    )
    ema_momentum: float = option(
        0.0, "validate, checkpoint and keep an exponential moving average of the "
        "weights with this momentum (0.999: about the last 1,000 steps); 0: the raw weights"
    )
    label_smoothing: float = option(
        0.05, "softens one-hot targets; helps calibration on ambiguous digits"
    )
    filters: tuple[int, ...] = option(
        (32, 64), "one conv block per entry; the homework's 2 blocks of 32 and 64"
    )
    dense_units: int = option(1024, "the homework's large dense layer (about 3M parameters)")
    dropout: float = option(0.25, "after the last conv block, as in the homework")
    dense_dropout: float = option(0.5, "before the logits; the dense layer has most weights")
    batch_norm: int = option(1, "1: BatchNorm after each conv (the homework found it helps); 0: none")
    dense_batch_norm: int = option(
        0, "1: BatchNorm between the large dense layer and its ReLU as well; 0: none "
        "(the homework's network)")
    downsampling: str = option("maxpool", "maxpool, or stride (2x2-strided convolutions)")
    augmented_copy: int = option(
        1, "1: each epoch adds a freshly augmented copy of every image (the homework's "
        "recipe); 0: originals only, no augmentation"
    )
    rotation: float = option(10.0, "augmentation: max rotation in degrees")
    translation: float = option(0.1, "augmentation: max shift as a fraction of 28 pixels")
    shear: float = option(0.15, "augmentation: max shear factor, both axes")
    zoom: float = option(
        0.1, "augmentation: max zoom in or out, a fraction of the size; digits vary "
        "in size more than a shear or a rotation can change")
    elastic: float = option(
        0.0, "augmentation: largest elastic displacement in pixels (smooth local "
        "distortion, Simard et al. 2003); 0: none"
    )
    validation_size: int = option(12_000, "held out of the 60k training images, stratified")

    def __post_init__(self):
        absolute_path(self, "data")
        require_seed(self)
        require_count(self, "epochs")
        require_count(self, "batch_size")
        require(0 < self.learning_rate < math.inf, self, "learning_rate",
                "a finite number > 0, e.g. 2e-3")
        require(0 <= self.weight_decay < math.inf, self, "weight_decay",
                "a finite number >= 0")
        require(self.ema_momentum == 0 or 0.5 <= self.ema_momentum < 1, self, "ema_momentum",
                "0 (off) or a momentum in [0.5, 1), e.g. 0.999")
        require(0 <= self.label_smoothing < 1, self, "label_smoothing", "a number in [0, 1)")
        require(1 <= len(self.filters) <= 3 and all(f >= 1 for f in self.filters),
                self, "filters", "1 to 3 filter counts >= 1, e.g. 32,64")
        require(self.dense_units >= 1, self, "dense_units", "a whole number >= 1")
        require(self.batch_norm in (0, 1), self, "batch_norm", "0 or 1")
        require(self.dense_batch_norm in (0, 1), self, "dense_batch_norm", "0 or 1")
        require(self.downsampling in DOWNSAMPLING, self, "downsampling", "maxpool or stride")
        parameters, activations = network_size(self)
        require_network_fits(self, ("filters", "dense_units"), parameters, activations,
                             max(self.batch_size, EVALUATION_BATCH),
                             "use fewer filters, fewer --dense-units or a smaller --batch-size")
        require(0 <= self.dropout < 1, self, "dropout", "a rate in [0, 1)")
        require(0 <= self.dense_dropout < 1, self, "dense_dropout", "a rate in [0, 1)")
        require(self.augmented_copy in (0, 1), self, "augmented_copy", "0 or 1")
        require(0 <= self.rotation <= 180, self, "rotation", "degrees in [0, 180]")
        require(0 <= self.translation < 1, self, "translation", "a fraction in [0, 1)")
        require(0 <= self.shear < 1, self, "shear", "a factor in [0, 1)")
        require(0 <= self.zoom < 1, self, "zoom", "a fraction in [0, 1)")
        require(0 <= self.elastic <= 5, self, "elastic", "pixels in [0, 5]")
        require_count(self, "validation_size")


def network_size(config: MnistConfig) -> tuple[int, int]:
    """`(parameters, activation values per image)` of `config`'s CNN; pure, no TensorFlow.

    The network is `hw1_keras.mnist.model.build_model`'s: per block a 3x3
    "same" convolution (no bias under BatchNorm), BatchNorm (4 values a
    channel, the moving statistics included, as Keras counts them), ReLU and a
    2x2 max-pool (or a stride of 2 instead); then Dropout, Flatten, the dense
    layer (with BatchNorm in place of its bias if asked) and 10 logits. The
    activation values are every layer's output for one image, the image
    included: what a training step keeps for its backward pass.
    """
    side, channels = IMAGE_SIDE, 1
    parameters, activations = 0, 2 * side * side  # The image and its normalized copy.
    for filters in config.filters:
        parameters += 9 * channels * filters + (4 * filters if config.batch_norm else filters)
        if config.downsampling == "stride":
            side = -(-side // 2)  # "same" padding rounds up.
        activations += side * side * filters * (3 if config.batch_norm else 2)
        if config.downsampling == "maxpool":
            side //= 2  # "valid" pooling rounds down.
            activations += side * side * filters
        channels = filters
    flat, dense = side * side * channels, config.dense_units
    parameters += flat * dense + (4 * dense if config.dense_batch_norm else dense)
    parameters += dense * CLASSES + CLASSES
    activations += 2 * flat + dense * (4 if config.dense_batch_norm else 2) + CLASSES
    return parameters, activations


def quick_preset() -> MnistConfig:
    """`--quick`: a few-minute run to try things (flags given with it still win).

    Three epochs over the 48k originals alone: the same number of images as
    1.5 augmented epochs, but without augmentation the network fits the
    training distribution sooner, which is what a short run can use.
    """
    return MnistConfig(epochs=3, augmented_copy=0)


def flag_presets() -> dict[str, dict]:
    """The fields each preset flag sets, for `hw1_keras.rerun.check_run_dir`'s advice."""
    default, quick = dataclasses.asdict(MnistConfig()), dataclasses.asdict(quick_preset())
    return {"--quick": {key: value for key, value in quick.items() if default[key] != value}}
