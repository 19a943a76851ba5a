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
from hw1_keras.photos.desk import without_desk
from hw1_keras.photos.paper import INK_THRESHOLD, ink_strength, shrink, stroke_width
from hw1_keras.photos.patches import digit_ink
from hw1_keras.photos.rules import without_rules

BOX = 20  # MNIST's digits fit a 20x20 box...
SIZE = 28  # ...centered by mass in a 28x28 image.
MIN_CONTRAST = 16  # Grey levels between background and ink; less is a blank image.
# MNIST's strokes, in pixels of the 28x28 image, measured on 2,000 test digits
# (2 x ink area / edge pixels): 2.3, 2.8 and 3.2 at the 5th, 25th and 50th
# percentiles. A pen line in a photo is far thinner once the digit is 20 pixels
# tall, and the network reads such wisps as a 1 (tests/test_photos_images.py).
THIN_STROKE = 2.3  # Thinner than this is widened...
STROKE = 2.8  # ...to this.
WORK_SIZE = 4 * BOX  # Widening works on the digit shrunk to this, to stay cheap.
# The most pixels an image is read at. The steps below hold about 15 bytes per
# pixel at their peak (float copies of the greys), on top of the model (a
# SavedModel with TensorFlow: about 660 MB), so that 20 megapixels keep a
# predict under 1 GB. A JPEG above it is decoded at 1/2, 1/4 or 1/8 of its
# size instead (JPEG's decoder scales for free); other images are refused
# from the size their header declares, before any decoding.
MAX_PIXELS = 20_000_000


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as float grey levels 0-255 (transparent parts as paper).

    Turned upright as its EXIF orientation says (phone photos are often stored
    sideways), and 16-bit or floating-point greys are scaled to 0-255 instead
    of clipped. A JPEG of more than `MAX_PIXELS` is read at a fraction of its
    size (`draft_scale`).

    Raises:
        InputError: the file is missing, empty, too large (above `MAX_PIXELS`
            and no JPEG, or above PIL's own limit), not an image PIL can
            read, or holds NaN or infinite greys.
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
            # `MAX_PIXELS` (below that limit) has the last word, so the
            # warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            grey, wide = _grey(path)
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        what = str(error).split(", could be")[0]  # PIL's sizes, without its guess.
        raise InputError(f"{path}: the image is too large to be read safely ({what}); "
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
    with Image.open(path) as image:  # Reads the header; the pixels wait for load().
        _decode_within_limit(image, path)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # In place: no copy of a large image.
        if image.mode.startswith("I") or image.mode == "F":
            return np.asarray(image, dtype=np.float32), True
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            return _flatten_transparency(image if image.mode == "RGBA"
                                         else image.convert("RGBA")), False
        return np.asarray(image.convert("L"), dtype=np.float32), False


def _decode_within_limit(image: Image.Image, path: Path) -> None:
    """Sets an opened, not yet decoded, image to decode at `MAX_PIXELS` or fewer.

    Raises:
        InputError: it declares more pixels and cannot be decoded smaller
            (not a JPEG, or over 64 times the limit).
    """
    width, height = image.size
    if width * height <= MAX_PIXELS:
        return
    scale = draft_scale(image.size, MAX_PIXELS)
    if scale is not None:  # Only JPEG's decoder takes a draft; the others keep their size.
        image.draft(image.mode, (max(1, width // scale), max(1, height // scale)))
    if image.size[0] * image.size[1] > MAX_PIXELS:
        raise InputError(f"{path}: {width:,} x {height:,} pixels is too large to read "
                         f"({width * height / 1e6:.1f} megapixels; predict reads up to "
                         f"{MAX_PIXELS / 1e6:g}); scale the picture down or crop it to the digit")


def draft_scale(size: tuple[int, int], limit: int) -> int | None:
    """The least of JPEG's decoding scales 1, 2, 4, 8 that brings `size` to `limit` pixels.

    None when even 1/8 leaves more. A JPEG decoded at 1/`scale` has
    ceil(width / scale) x ceil(height / scale) pixels.
    """
    width, height = size
    for scale in (1, 2, 4, 8):
        if -(-width // scale) * -(-height // scale) <= limit:
            return scale
    return None


def _flatten_transparency(image: Image.Image) -> np.ndarray:
    """Greys of an image with transparency, laid on paper that contrasts with its ink.

    Transparent pixels are paper, never ink: white paper under dark opaque
    strokes, black under light ones (a white digit drawn on a transparent
    layer is as common as a black one).
    """
    # In place, one float copy at a time: the image may hold `MAX_PIXELS`.
    alpha = np.asarray(image.getchannel("A"), dtype=np.float32)
    alpha /= 255.0
    grey = np.array(image.convert("L"), dtype=np.float32)  # L of RGBA: the RGB's luma.
    opaque = alpha > 0.5
    paper = 0.0 if opaque.any() and grey.mean(where=opaque) > 127 else 255.0
    grey *= alpha
    alpha -= 1.0
    alpha *= -paper  # paper * (1 - alpha)
    grey += alpha
    return grey


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
