"""Users' digit images -> 28x28 MNIST-style arrays, the way MNIST itself was made.

MNIST digits are white on black, size-normalized to fit a 20x20 box keeping
their aspect ratio, then placed in a 28x28 image so that their center of mass
is at the center. A photo or a drawing of a digit must go through the same
steps before the network can read it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from hw1_keras.errors import InputError
from hw1_keras.mnist.desk import without_desk
from hw1_keras.mnist.paper import INK_THRESHOLD, ink_strength, shrink, stroke_width
from hw1_keras.mnist.patches import digit_ink
from hw1_keras.mnist.rules import without_rules

BOX = 20  # MNIST's digits fit a 20x20 box...
SIZE = 28  # ...centered by mass in a 28x28 image.
MIN_CONTRAST = 16  # Grey levels between background and ink; less is a blank image.
# MNIST's strokes, in pixels of the 28x28 image, measured on 2,000 test digits
# (2 x ink area / edge pixels): 2.3, 2.8 and 3.2 at the 5th, 25th and 50th
# percentiles. A pen line in a photo is far thinner once the digit is 20 pixels
# tall, and the network reads such wisps as a 1 (tests/test_mnist_images.py).
THIN_STROKE = 2.3  # Thinner than this is widened...
STROKE = 2.8  # ...to this.
WORK_SIZE = 4 * BOX  # Widening works on the digit shrunk to this, to stay cheap.


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as float grey levels 0-255 (transparent parts as paper).

    Turned upright as its EXIF orientation says (phone photos are often stored
    sideways), and 16-bit or floating-point greys are scaled to 0-255 instead
    of clipped.

    Raises:
        InputError: the file is missing, empty, too large, not an image PIL
            can read, or holds NaN or infinite greys.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a folder, not an image; name the image files")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Between PIL's pixel limit and twice it, PIL warns but decodes;
            # the digit is read all the same, so the warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            grey, wide = _grey(path)
    except Image.DecompressionBombError:
        raise InputError(f"{path}: the image is too large to be read safely; "
                         "pass a smaller picture of the digit") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable image ({type(error).__name__}); "
                         "pass a PNG or JPEG") from None
    if not np.isfinite(grey).all():  # Float TIFFs can hold NaN or inf greys.
        raise InputError(f"{path}: the image has NaN or infinite grey values; "
                         "save it with finite greys, e.g. as an 8-bit PNG")
    return _wide_grey(grey) if wide else grey


def _grey(path: Path) -> tuple[np.ndarray, bool]:
    """The image's greys, upright, transparency as paper; whether they are wide.

    8-bit images come as 0 (black) to 255 (white); 16/32-bit integer and float
    ones ("wide") as stored, for `_wide_grey` to scale once they are checked.
    """
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I") or image.mode == "F":
            return np.asarray(image, dtype=np.float32), True
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            return _flatten_transparency(image.convert("RGBA")), False
        return np.asarray(image.convert("L"), dtype=np.float32), False


def _flatten_transparency(image: Image.Image) -> np.ndarray:
    """Greys of an image with transparency, laid on paper that contrasts with its ink.

    Transparent pixels are paper, never ink: white paper under dark opaque
    strokes, black under light ones (a white digit drawn on a transparent
    layer is as common as a black one).
    """
    alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    grey = np.asarray(image.convert("RGB").convert("L"), dtype=np.float32)
    opaque = alpha > 0.5
    paper = 0.0 if opaque.any() and grey[opaque].mean() > 127 else 255.0
    return grey * alpha + paper * (1.0 - alpha)


def _wide_grey(grey: np.ndarray) -> np.ndarray:
    """Greys of a 16/32-bit integer or a float image as 0-255.

    Values above 255 are read as 16-bit (0-65535), values within 0-1 as
    fractions, anything else as 8-bit levels.
    """
    top = grey.max() if grey.size else 0.0
    if top > 255:
        return np.clip(grey * (255.0 / 65535.0), 0, 255)
    if top <= 1:
        return np.clip(grey, 0, 1) * 255.0
    return np.clip(grey, 0, 255)


def to_mnist(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Normalizes a grey image of one digit like MNIST: uint8 (28, 28), white on black.

    Steps: paint over a desk around the page (`desk`), invert a light
    background (and even out uneven light, `paper`),
    erase printed lines across the page (`rules`), crop to the ink (leaving
    out specks, desks and fingers, `patches`), scale the digit into 20x20
    keeping its aspect ratio, and center it by center of mass in 28x28.

    Raises:
        InputError: the image is blank (no contrast between ink and paper), or
            shows printed lines and nothing else.
    """
    grey = ink_strength(without_desk(grey))  # MNIST's white ink on black, even if the
    # light was not, and not the desk around the page.
    contrast = grey.max()
    if contrast < MIN_CONTRAST:
        raise InputError(f"{name}: the image is blank; expected one dark digit on light paper "
                         "or a light digit on dark")
    grey = without_rules(grey, INK_THRESHOLD * contrast)  # Ruled or squared paper.
    ink = grey > INK_THRESHOLD * contrast
    if not ink.any():
        raise InputError(f"{name}: the image shows printed lines but no digit; expected one "
                         "digit written on the page")
    ink = digit_ink(ink)
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = grey[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] * (255.0 / contrast)
    digit = _widen_thin_strokes(digit)

    scale = BOX / max(digit.shape)
    height = max(1, round(digit.shape[0] * scale))
    width = max(1, round(digit.shape[1] * scale))
    resized = np.asarray(
        Image.fromarray(digit.astype(np.float32), mode="F").resize((width, height),
                                                                   Image.Resampling.LANCZOS)
    ).clip(0, 255)

    canvas = np.zeros((SIZE, SIZE), np.float32)
    mass = resized.sum()
    center_y = (resized.sum(axis=1) * np.arange(height)).sum() / mass
    center_x = (resized.sum(axis=0) * np.arange(width)).sum() / mass
    top = int(round(SIZE / 2 - center_y))
    left = int(round(SIZE / 2 - center_x))
    top = min(max(top, 0), SIZE - height)  # Keep the whole digit inside the frame.
    left = min(max(left, 0), SIZE - width)
    canvas[top:top + height, left:left + width] = resized
    return canvas.round().astype(np.uint8)


def _widen_thin_strokes(digit: np.ndarray) -> np.ndarray:
    """Widens strokes that would be thinner than MNIST's once the digit is 20 px tall.

    MNIST's digits were written with a thick pen; a ballpoint line in a photo
    ends up a fraction of a pixel wide and faint. Thick strokes pass
    unchanged.
    """
    if stroke_width(digit) * BOX / max(digit.shape) >= THIN_STROKE:
        return digit
    if max(digit.shape) > WORK_SIZE:
        digit = shrink(digit, WORK_SIZE)
        digit = digit * (255.0 / digit.max())
    grow = round(STROKE * max(digit.shape) / BOX - stroke_width(digit))
    if grow < 1:
        return digit
    size = grow + 1 + grow % 2  # An odd window, that widens by about `grow`.
    padded = np.pad(digit.astype(np.float32), size // 2)  # Room for the wider ink.
    return np.asarray(Image.fromarray(padded, mode="F").filter(ImageFilter.MaxFilter(size)))


def load_digit(path: str | Path) -> np.ndarray:
    """`read_image` then `to_mnist`: a file to a (28, 28) uint8 MNIST-style digit."""
    return to_mnist(read_image(path), str(path))
