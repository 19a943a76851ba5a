"""Users' digit images are normalized the way MNIST itself was made."""

from __future__ import annotations

import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hw1_keras.errors import InputError
from hw1_keras.photos import images
from hw1_keras.photos.images import (draft_scale, load_digit, read_image, stroke_width,
                                     to_mnist)


@pytest.fixture(scope="module")
def mnist_digits(mnist_file):
    with np.load(mnist_file) as archive:
        return archive["x_test"][:20], archive["y_test"][:20]


def test_an_mnist_digit_comes_back_unchanged(mnist_digits):
    images, _ = mnist_digits
    for image in images[:5]:
        assert np.abs(to_mnist(image.astype(np.float32)).astype(int) - image).mean() < 1.0


def test_a_large_off_center_dark_on_light_drawing_is_normalized_like_mnist(tmp_path, mnist_digits):
    images, _ = mnist_digits
    digit = images[0]
    big = Image.fromarray(255 - digit).resize((150, 150), Image.Resampling.BILINEAR)
    page = Image.new("RGB", (420, 300), (250, 250, 245))
    page.paste(big.convert("RGB"), (250, 30))
    path = tmp_path / "seven.jpg"
    page.save(path)
    normalized = load_digit(path)
    assert normalized.shape == (28, 28) and normalized.dtype == np.uint8
    difference = np.abs(normalized.astype(int) - digit.astype(int)).mean()
    other = np.abs(normalized.astype(int) - images[1].astype(int)).mean()
    assert difference < 8 and difference < other / 3
    rows, columns = np.nonzero(normalized > 0.2 * normalized.max())
    assert max(np.ptp(rows), np.ptp(columns)) + 1 <= 21  # Fits MNIST's 20x20 box.
    mass = normalized.astype(float)
    center = [(mass.sum(1) * np.arange(28)).sum() / mass.sum(),
              (mass.sum(0) * np.arange(28)).sum() / mass.sum()]
    np.testing.assert_allclose(center, [14, 14], atol=1.0)


@pytest.mark.parametrize("stroke", [0, 255])
def test_transparent_png_counts_transparency_as_paper(tmp_path, stroke):
    # An opaque "1" on transparent: black strokes read on white paper, white
    # ones (as drawn on a layer for a dark theme) on black.
    image = np.zeros((60, 60, 4), np.uint8)
    image[10:50, 27:33] = [stroke, stroke, stroke, 255]
    path = tmp_path / "one.png"
    Image.fromarray(image, "RGBA").save(path)
    digit = load_digit(path)
    assert digit[14, 14] > 200 and digit[0, 0] == 0


@pytest.mark.parametrize("paper, ink", [(126, 10), (60, 0), (150, 255), (200, 255)])
def test_ink_is_what_departs_from_the_paper_whatever_its_grey(mnist_digits, paper, ink):
    # A dim photo's paper can be darker than mid-grey; chalk on a board is
    # lighter ink on lighter paper. Each must read as the same MNIST digit.
    images, _ = mnist_digits
    digit = images[0].astype(np.float32) / 255.0
    drawn = paper + (ink - paper) * digit
    normalized = to_mnist(np.pad(drawn, 6, constant_values=paper))
    assert np.abs(normalized.astype(int) - images[0].astype(int)).mean() < 4


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_greys_get_one_line(tmp_path, bad):
    grey = np.full((40, 40), 0.9, np.float32)
    grey[5:35, 18:22] = 0.1
    grey[0, 0] = bad
    path = tmp_path / "float.tif"
    Image.fromarray(grey, "F").save(path)
    with pytest.raises(InputError, match="NaN or infinite") as error:
        load_digit(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def _pen_seven(width):
    page = Image.new("L", (400, 400), 250)
    ImageDraw.Draw(page).line([(110, 60), (290, 60), (170, 340)], fill=20, width=width,
                              joint="curve")
    return np.asarray(page, np.float32)


@pytest.mark.parametrize("pen", [3, 8])
def test_a_thin_pen_line_is_widened_to_mnists_stroke(pen):
    # A ballpoint 7 in a photo: at 20 px tall its line would be a faint wisp
    # (0.2-0.6 px), which the network reads as a 1.
    thin, thick = to_mnist(_pen_seven(pen)), to_mnist(_pen_seven(35))
    assert 2.3 <= stroke_width(thin.astype(np.float32)) <= 4.7  # MNIST's 5th-95th percentiles.
    assert thin.max() == 255
    assert np.corrcoef(thin.ravel(), thick.ravel())[0, 1] > 0.8


def _ink_box(digit):
    rows, columns = np.nonzero(digit > 0.2 * digit.max())
    return np.ptp(rows) + 1, np.ptp(columns) + 1


def test_a_photo_stored_sideways_is_turned_upright_by_its_exif_orientation(tmp_path):
    upright = np.full((80, 60), 240, np.uint8)
    upright[10:70, 27:33] = 20  # A tall dark "1" on light paper.
    # Stored turned 90 degrees counter-clockwise, as phones do; orientation 6
    # tells viewers to turn it back clockwise.
    stored = Image.fromarray(upright).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    stored.save(path, exif=exif)
    height, width = _ink_box(load_digit(path))
    assert height == 20 and width < 5  # Upright: tall and thin, not lying down.


def test_a_16_bit_greyscale_png_reads_like_its_8_bit_twin(tmp_path):
    eight = np.full((50, 40), 230, np.uint8)
    eight[8:42, 18:23] = 30
    Image.fromarray(eight).save(tmp_path / "eight.png")
    sixteen = Image.fromarray(eight.astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I")
    sixteen.save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")  # Stays 16-bit on disk.
    np.testing.assert_allclose(load_digit(tmp_path / "sixteen.png"),
                               load_digit(tmp_path / "eight.png"), atol=1)


def test_an_image_too_large_to_decode_safely_gets_one_line(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("L", (40, 40), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels is over twice this.
    with pytest.raises(InputError, match="too large") as error:
        load_digit(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert "(1600 pixels) exceeds limit of 200 pixels" in str(error.value)  # PIL's figures.


def test_bad_images_get_one_line_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    ruled = tmp_path / "ruled.png"  # An empty page of an exercise book.
    page = Image.new("L", (200, 150), 230)
    for row in (30, 70, 110):
        ImageDraw.Draw(page).line([(0, row), (199, row)], fill=40, width=2)
    page.save(ruled)
    for path, message in [(empty, "empty"), (text, "not a readable image"),
                          (blank, "blank"), (ruled, "printed lines but no digit"),
                          (tmp_path / "missing.png", "no such file"),
                          (tmp_path, "a folder, not an image")]:
        with pytest.raises(InputError, match=message) as error:
            load_digit(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_an_image_just_over_pils_warning_limit_is_read_quietly(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    canvas = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(canvas).line([(20, 5), (20, 35)], fill=0, width=4)
    canvas.save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: warned, not refused.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        digit = load_digit(path)
    assert digit.shape == (28, 28) and digit.max() > 0
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("size, scale", [
    ((4000, 3000), 1), ((5472, 3648), 1),  # 12 and 20 megapixel photos.
    ((8000, 6000), 2), ((8001, 6000), 4),  # 1/2 leaves 4001 x 3000: over 12 MP.
    ((12_500, 12_500), 4), ((30_000, 30_000), 8), ((40_000, 40_000), None),
])
def test_draft_scale_is_the_least_jpeg_scale_within_the_limit(size, scale):
    limit = 12_000_000 if size[0] == 8001 else 20_000_000
    assert draft_scale(size, limit) == scale


def _digit_page(size):
    page = Image.new("RGB", size, (245, 243, 240))
    width, height = size
    ImageDraw.Draw(page).line([(width * 0.35, height * 0.2), (width * 0.65, height * 0.2),
                               (width * 0.45, height * 0.8)], fill=(20, 20, 30),
                              width=max(3, width // 40))
    return page


def test_a_jpeg_over_the_pixel_limit_is_decoded_smaller(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    _digit_page((800, 600)).save(path, quality=95)
    whole = load_digit(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 40_000)  # 480,000 pixels: 1/4 fits.
    assert read_image(path).shape == (150, 200)
    smaller = load_digit(path)
    assert np.corrcoef(whole.ravel(), smaller.ravel())[0, 1] > 0.9  # The same 7.


def _png_header(width, height):
    """A PNG that declares `width` x `height` grey pixels and holds almost none."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey.
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_png_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    # 12,500 x 12,500 (a 206 KB PNG of a page) took 23 s and 3 GB to decode.
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(12_500, 12_500))
    started = time.perf_counter()
    with pytest.raises(InputError) as error:
        load_digit(path)
    assert time.perf_counter() - started < 1  # Not decoded.
    assert str(error.value) == (
        f"{path}: 12,500 x 12,500 pixels is too large to read (156.2 megapixels; predict reads "
        "up to 20); scale the picture down or crop it to the digit")


def test_a_jpeg_beyond_an_eighth_of_the_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    _digit_page((800, 600)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 5_000)  # 1/8 leaves 7,500 pixels.
    with pytest.raises(InputError, match=r"800 x 600 pixels is too large to read") as error:
        load_digit(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
