"""Printed lines across the page (ruled, squared paper) are erased; the digit is not."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.photos.rules import MAX_TILT, without_rules

THRESHOLD = 40.0  # Strength above which a pixel is ink, as to_mnist passes it.


def _lines(shape, spacing, degrees, width=2.0, strength=80.0, down=False):
    """Strength of printed lines `spacing` apart, turned `degrees`, anti-aliased."""
    rows, columns = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    if down:
        rows, columns = columns, rows
    position = rows - np.tan(np.radians(degrees)) * columns
    offset = position % spacing
    distance = np.minimum(offset, spacing - offset)
    return strength * np.clip(width / 2 + 0.5 - distance, 0, 1)


def _kept(erased, page, digit):
    """The share of the digit's pixels left as they were."""
    return np.mean(erased[digit > 0] == page[digit > 0])


def _left(erased, page, where):
    """The share of the ink in `where` that is left."""
    return (erased[where] > THRESHOLD).sum() / max((page[where] > THRESHOLD).sum(), 1)


def _digit(shape=(300, 400)):
    """A thick stroke from top to bottom, slanted like a 1 or a 7's stem, at full strength."""
    strength = np.zeros(shape)
    for row in range(60, 240):
        column = 200 + (row - 150) // 4
        strength[row, column - 6:column + 6] = 200.0
    return strength


@pytest.mark.parametrize("degrees", [0.0, 2.5, -4.0])
def test_ruled_lines_are_erased_and_the_digit_kept_whole(degrees):
    digit = _digit()
    page = np.maximum(digit, _lines(digit.shape, 40, degrees))
    erased = without_rules(page, THRESHOLD)
    # Where strokes cross lines too; a stroke's corner can merge into a line.
    assert _kept(erased, page, digit) > 0.995
    beside = np.ones(digit.shape, bool)
    beside[:, 140:260] = False  # Clear of the stroke and of where lines meet it.
    assert (page[beside] > THRESHOLD).sum() > 1000  # There were lines to erase...
    assert _left(erased, page, beside) < 0.03  # ...and short ends in the corners may stay.


def test_lines_fanning_out_on_a_page_photographed_at_an_angle_are_erased():
    digit = _digit()
    rows, columns = np.mgrid[0:digit.shape[0], 0:digit.shape[1]]
    page = digit.copy()
    for row, degrees in zip(range(20, 300, 40), np.linspace(-2.5, 2.5, 7)):
        # Each line at its own tilt, as perspective draws them.
        distance = np.abs(rows - row - np.tan(np.radians(degrees)) * (columns - 200))
        page = np.maximum(page, 80.0 * np.clip(1.5 - distance, 0, 1))
    erased = without_rules(page, THRESHOLD)
    assert _kept(erased, page, digit) > 0.995
    beside = np.ones(digit.shape, bool)
    beside[:, 140:260] = False
    assert (page[beside] > THRESHOLD).sum() > 1000
    assert _left(erased, page, beside) < 0.03


def test_squared_paper_loses_both_kinds_of_line():
    digit = _digit()
    page = np.maximum.reduce([digit, _lines(digit.shape, 25, 1.5),
                              _lines(digit.shape, 25, -1.5, down=True)])
    erased = without_rules(page, THRESHOLD)
    assert _kept(erased, page, digit) > 0.995
    outside = np.ones(digit.shape, bool)
    outside[40:260, 130:270] = False
    assert _left(erased, page, outside) < 0.03


def test_squared_paper_in_a_large_photo_keeps_no_dots_where_lines_cross():
    # At this size a line's window is many pixels wider than the line, and a
    # line crossing it reaches the window's edges; before the lines across
    # were erased a second time, the crossings stayed, as dots that joined
    # up into a crop of the whole page.
    shape = (1500, 2000)
    digit = np.zeros(shape)
    digit[400:1100, 960:1010] = 200.0
    page = np.maximum.reduce([digit, _lines(shape, 100, -2.0, width=10.0),
                              _lines(shape, 100, 2.5, width=10.0, down=True)])
    erased = without_rules(page, THRESHOLD)
    assert _kept(erased, page, digit) > 0.995
    inner = np.zeros(shape, bool)
    inner[100:-100, 100:-100] = True  # Short ends of lines may stay in the corners.
    inner[300:1200, 860:1110] = False
    assert (page[inner] > THRESHOLD).sum() > 100_000
    assert (erased[inner] > THRESHOLD).sum() == 0


def test_a_faint_line_that_the_threshold_sees_in_dashes_is_erased_whole():
    digit = _digit()
    # Lines peaking just above the threshold, under half of it between pixels.
    page = np.maximum(digit, _lines(digit.shape, 40, 1.0, width=1.0, strength=1.1 * THRESHOLD))
    erased = without_rules(page, THRESHOLD)
    assert _kept(erased, page, digit) > 0.995
    beside = np.ones(digit.shape, bool)
    beside[:, 140:260] = False
    assert (page[beside] > THRESHOLD).sum() > 100  # Dashes...
    assert _left(erased, page, beside) < 0.03  # ...of lines erased whole.


def test_a_margin_line_down_a_ruled_page_is_erased():
    digit = _digit()
    page = np.maximum(digit, _lines(digit.shape, 40, 1.0))
    page[:, 60:62] = np.maximum(page[:, 60:62], 80.0)  # The notebook's margin.
    erased = without_rules(page, THRESHOLD)
    assert _kept(erased, page, digit) > 0.995
    assert (erased[:, 55:67] > THRESHOLD).sum() == 0


def test_one_line_is_kept_as_it_may_be_a_digits_bar():
    page = _digit()
    page[100:103, :] = 200.0  # A single thin line across the whole image.
    assert np.array_equal(without_rules(page, THRESHOLD), page)


def test_wide_bands_are_not_printed_lines():
    page = _digit()
    page[250:300, :] = 120.0  # A dark desk along the bottom,
    page[10:40, :] = 120.0  # and a shadow along the top.
    assert np.array_equal(without_rules(page, THRESHOLD), page)


def test_lines_turned_more_than_the_limit_are_left():
    digit = _digit()
    page = np.maximum(digit, _lines(digit.shape, 40, MAX_TILT + 4))
    assert np.array_equal(without_rules(page, THRESHOLD), page)


def test_mnist_digits_pass_unchanged(mnist_file):
    with np.load(mnist_file) as archive:
        digits = archive["x_test"][:200].astype(float)
    for digit in digits:
        assert np.array_equal(without_rules(digit, 0.2 * digit.max()), digit)


def test_a_stroke_standing_on_a_line_keeps_its_foot():
    digit = _digit()  # The stroke ends at row 239, on the line at row 240.
    page = np.maximum(digit, _lines(digit.shape, 40, 0.0))
    erased = without_rules(page, THRESHOLD)
    lost = np.count_nonzero(erased[digit > 0] != page[digit > 0])
    assert lost <= 2  # Only a corner pixel or two, no thicker than the line, merge into it.
