"""`python run.py bench photos`: predict's accuracy on photographed digits.

MNIST's test digits are "photographed": enlarged, written in dark ink on
light paper in a page several times their size, lit evenly or unevenly, with
camera noise. Each page goes through predict's preparation
(`hw1_keras.photos.images.to_mnist`) and the exported model, and the accuracy
under each light is printed beside the model's accuracy on the same digits as
MNIST has them: the preparation's cost is the difference.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.common import row
from hw1_keras.errors import InputError
from hw1_keras.export import input_specs, load_endpoint
from hw1_keras.mnist import data as mnist_data
from hw1_keras.photos.images import to_mnist
from hw1_keras.predict import UNSURE

IMAGES = 1_000  # The first test digits; about 10 s of preparation on one core.
PAGE = (300, 400)  # A photo's height and width, in pixels.
PAPER, INK = 0.9, 0.1  # Shares of the light that paper and ink reflect.
NOISE = 3.0  # The camera's noise, in grey levels (standard deviation).
# Lights (each a share of full light across the page) and marks on the page.
LIGHTS = {
    "even": "evenly lit",
    "gradient": "light falling off across the page (to 45%)",
    "vignette": "darker corners (vignetting, to 45%)",
    "shadow": "a soft shadow over part of the page (to 55%)",
    "speck": "evenly lit, a speck of dust near a corner",
    "ruled": "ruled paper (turned up to 3 degrees)",
    "squared": "squared paper (turned up to 3 degrees)",
    "desk": "evenly lit, a dark desk along one side",
    "corner": "evenly lit, a dark desk along two sides",
    "note": "evenly lit, a note on a dark desk",
}
DESK = 0.2  # The share of the light a desk reflects (the paper: PAPER).
LINE = 0.35, 1.5  # Printed lines: their share of the ink's darkness, and width in pixels.


def photograph(digit: np.ndarray, light: str, rng: np.random.Generator) -> np.ndarray:
    """A grey photo (0-255 floats) of an MNIST digit written in dark ink on paper.

    Args:
        digit: uint8 (28, 28), white on black, as in MNIST.
        light: one of `LIGHTS`.
        rng: draws the digit's size and place, the light's direction, the noise.
    """
    height, width = PAGE
    size = int(rng.integers(150, 260))  # The digit's box; MNIST's is 28.
    top = int(rng.integers(20, height - size - 20 + 1))
    left = int(rng.integers(20, width - size - 20 + 1))
    ink = np.zeros(PAGE, np.float32)
    ink[top:top + size, left:left + size] = np.asarray(
        Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR)) / 255.0
    rows, columns = np.mgrid[0:height, 0:width]
    y, x = rows / (height - 1) - 0.5, columns / (width - 1) - 0.5  # -0.5 to 0.5
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y  # Position along a random direction.
    if light == "gradient":
        lit = 1.0 - 0.55 * (along / np.sqrt(0.5) + 0.5)
    elif light == "vignette":
        lit = 1.0 - 0.55 * (x ** 2 + y ** 2) / 0.5
    elif light == "shadow":
        edge = rng.uniform(-0.2, 0.2)
        lit = 1.0 - 0.45 / (1.0 + np.exp(-(along - edge) / 0.03))
    elif light in ("even", "speck", "ruled", "squared", "desk", "corner", "note"):
        lit = np.ones(PAGE)
    else:
        raise ValueError(f"light {light!r}: expected one of {', '.join(LIGHTS)}")
    if light in ("ruled", "squared"):
        tilt = np.tan(np.radians(rng.uniform(-3, 3)))
        across = rows - tilt * (columns - width / 2)  # Lines across the page...
        lines = [(across, rng.uniform(35, 70))]
        if light == "squared":  # ...and down it, at right angles, in squares.
            spacing = rng.uniform(20, 40)
            lines = [(across, spacing), (columns + tilt * (rows - height / 2), spacing)]
        for position, spacing in lines:
            ink = np.maximum(ink, _printed_lines(position, spacing, rng))
    grey = 255.0 * lit * (PAPER - (PAPER - INK) * ink) + rng.normal(0, NOISE, PAGE)
    if light in ("desk", "corner", "note"):  # Beyond the sheet's edges.
        room = {"top": top, "bottom": height - top - size, "left": left,
                "right": width - left - size}
        sides = {"desk": [max(room, key=room.get)],  # Where there is most room.
                 "corner": [max(("top", "bottom"), key=room.get),
                            max(("left", "right"), key=room.get)],
                 "note": list(room)}[light]
        for side in sides:
            depth = room[side] - 15  # The sheet's edge stays 15 px clear of the digit.
            desk = {"top": rows < depth, "bottom": rows >= height - depth,
                    "left": columns < depth, "right": columns >= width - depth}[side]
            grey[desk] = 255.0 * DESK + rng.normal(0, NOISE, int(desk.sum()))
    if light == "speck":
        y0, x0 = rng.choice([12, height - 13]), rng.choice([12, width - 13])
        grey[(rows - y0) ** 2 + (columns - x0) ** 2 <= 16] = 40.0
    return np.clip(grey, 0, 255).astype(np.float32)


def _printed_lines(position: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Ink of lines `spacing` apart in `position` (pixels across them), anti-aliased."""
    darkness, line_width = LINE
    offset = (position - rng.uniform(0, spacing)) % spacing
    distance = np.minimum(offset, spacing - offset)  # To the nearest line's middle.
    return darkness * np.clip(line_width / 2 + 0.5 - distance, 0, 1)


def main(args) -> dict:
    """Prints the model's accuracy on MNIST's first test digits, as they are and photographed."""
    if not args.model:
        raise InputError("bench photos needs --model RUN/saved_model (an MNIST run's export)")
    if not args.data:
        raise InputError("bench photos needs --data PATH.npz (its test digits are photographed)")
    _, (x_test, y_test) = mnist_data.load_arrays(args.data)
    serve = load_endpoint(args.model)
    if [None, 28, 28] not in [spec.shape.as_list() for spec in input_specs(serve)]:
        raise InputError(f"--model {args.model}: not an MNIST model; pass an MNIST run's "
                         "saved_model")
    digits, labels = x_test[:IMAGES], y_test[:IMAGES]

    confidence, right = [], []  # Of every photographed page's answer.

    def accuracy(images: list, photographed: bool = True) -> float:
        """Unreadable pages (None: read as blank) count as wrong."""
        read = [image for image in images if image is not None]
        probabilities = np.concatenate([serve(np.stack(read[start:start + 500])).numpy()
                                        for start in range(0, len(read), 500)])
        predictions = iter(probabilities.argmax(axis=1))
        answers = np.asarray([-1 if image is None else next(predictions) for image in images])
        if photographed:
            confidence.extend(probabilities.max(axis=1))
            right.extend(answers[answers >= 0] == labels[answers >= 0])
        return float(np.mean(answers == labels))

    print(f"predict on MNIST's first {len(digits):,} test digits, photographed on "
          f"{PAGE[1]}x{PAGE[0]} pages", flush=True)
    results = {"photos_images": len(digits),
               "photos_mnist": accuracy(list(digits), photographed=False)}
    row("the digits as MNIST has them", f"{results['photos_mnist']:.1%}")
    for light, description in LIGHTS.items():
        rng = np.random.default_rng(0)  # Each light gets the same digits' sizes and places.
        results[f"photos_{light}"] = accuracy([_prepared(photograph(digit, light, rng))
                                               for digit in digits])
        row(description, f"{results[f'photos_{light}']:.1%}")
    # How far predict's "unsure" mark (below UNSURE) tells wrong answers apart.
    confidence, right = np.asarray(confidence), np.asarray(right, bool)
    unsure = confidence < UNSURE
    results.update(photos_unsure_share=float(unsure.mean()),
                   photos_wrong_marked_unsure=float(unsure[~right].mean()) if (~right).any()
                   else 1.0,
                   photos_sure_accuracy=float(right[~unsure].mean()) if (~unsure).any()
                   else None)
    row(f"answers marked unsure (under {UNSURE:.0%})",
        f"{unsure.sum():,} of {len(unsure):,}, {right[unsure].mean():.1%} of them right"
        if unsure.any() else f"none of {len(unsure):,}")
    row("wrong answers marked unsure", f"{(~right & unsure).sum()} of {(~right).sum()}")
    return results


def _prepared(photo: np.ndarray) -> np.ndarray | None:
    try:
        return to_mnist(photo)
    except InputError:  # Read as blank, as predict would say.
        return None
