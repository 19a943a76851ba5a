"""Users' digit images are normalized the way MNIST itself was made."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hw1_keras.errors import InputError
from hw1_keras.mnist.images import load_digit, to_mnist


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


def test_transparent_png_counts_transparency_as_paper(tmp_path):
    image = np.zeros((60, 60, 4), np.uint8)
    image[10:50, 27:33] = [0, 0, 0, 255]  # An opaque black "1" on transparent.
    path = tmp_path / "one.png"
    Image.fromarray(image, "RGBA").save(path)
    digit = load_digit(path)
    assert digit[14, 14] > 200 and digit[0, 0] == 0


def test_bad_images_get_one_line_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    for path, message in [(empty, "empty"), (text, "not a readable image"),
                          (blank, "blank"), (tmp_path / "missing.png", "no such file")]:
        with pytest.raises(InputError, match=message) as error:
            load_digit(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
