"""A desk around the page is painted over; bold light digits are not taken for a page."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hw1_keras.photos.desk import without_desk
from hw1_keras.photos.images import to_mnist
from hw1_keras.photos.paper import ink_strength


@pytest.mark.parametrize("sides", [("bottom", "left"), ("top", "bottom"), ("top", "left", "right")])
def test_a_desk_along_several_sides_is_not_taken_for_the_paper(sides):
    # Most of the border is desk, so the border alone says "dark paper, light
    # ink"; the page covers more of the image, and the desk's edges are straight.
    rows, columns = np.mgrid[0:300, 0:400]
    page = np.full((300, 400), 230.0)
    page[100:200, 190:196] = 25.0  # A stroke on the page.
    desk = {"top": rows < 40 + 0.1 * columns, "bottom": rows >= 250 - 0.05 * columns,
            "left": columns < 40 + 0.1 * rows, "right": columns >= 360}
    for side in sides:
        page[desk[side]] = 50.0
    page += np.random.default_rng(0).normal(0, 3, page.shape)
    strength = ink_strength(without_desk(page))
    assert strength[100:200, 190:196].mean() > 150  # The stroke is ink...
    assert np.median(strength[130:170, 250:300]) == 0  # ...and the page is paper.


def test_a_bold_chalk_0_running_off_the_image_is_not_taken_for_the_paper():
    # Light ink covers most of the image, with dark board inside it (the 0's
    # counter, as a digit on a page would be), and the board lies along the
    # whole top side, as a desk would; but its edge there is curved, a
    # stroke's, not a desk's. Without that test the chalk was read as paper.
    rows, columns = np.mgrid[0:300, 0:300]
    distance = np.hypot(rows - 170, columns - 150)
    board = np.where((distance <= 165) & (distance > 60), 230.0, 25.0)
    strength = ink_strength(without_desk(board))
    assert strength[170, 40] > 150 and strength[0, 150] == 0 and strength[170, 150] == 0


def test_a_bold_chalk_bar_across_the_image_is_not_taken_for_the_paper():
    # The board lies along two whole sides with straight edges, like a desk,
    # and the chalk covers 60% of the image; but no dark ink lies on the
    # chalk, as a digit's would on a page.
    board = np.full((300, 400), 25.0)
    board[:, 80:320] = 230.0
    strength = ink_strength(without_desk(board))
    assert strength[150, 200] > 150 and strength[150, 40] == 0


@pytest.mark.parametrize("turn", [0.0, 12.0])
def test_a_note_lying_on_a_desk_is_read_on_its_paper(turn):
    # The desk fills the whole border; the note lies inside the image.
    rows, columns = np.mgrid[0:300, 0:400].astype(float)
    angle = np.radians(turn)
    across = np.cos(angle) * (columns - 200) + np.sin(angle) * (rows - 150)
    down = -np.sin(angle) * (columns - 200) + np.cos(angle) * (rows - 150)
    photo = np.where((np.abs(across) < 90) & (np.abs(down) < 90), 230.0, 50.0)
    photo[110:190, 197:203] = 25.0  # A stroke on the note.
    photo += np.random.default_rng(0).normal(0, 3, photo.shape)
    strength = ink_strength(without_desk(photo))
    assert strength[110:190, 197:203].mean() > 150
    assert np.median(strength[:, :60]) == 0  # The desk is paper now, not ink.


def test_bold_mnist_digits_are_not_taken_for_a_note_on_a_desk(mnist_file):
    # White on black with the black all round, like a note on a desk: these
    # bold 0s and 8s are wide, fill 90-94% of their convex hull, and their
    # holes are narrow; a looser test reads them as notes.
    with np.load(mnist_file) as archive:
        digits = archive["x_test"][[2649, 5960, 6150, 6154, 6391]].astype(np.float32)
    for digit in digits:
        np.testing.assert_array_equal(without_desk(digit), digit)


def test_a_bold_light_0_with_a_slit_of_a_hole_is_not_taken_for_a_note():
    # Wide, filling its convex hull, its hole narrow like a pen stroke: only
    # its shape, an ellipse, not a rectangle, tells it from a note (about 5
    # in 100 bold painted 0s are like this).
    rows, columns = np.mgrid[0:280, 0:280]
    drawing = np.zeros((280, 280), np.float32)
    drawing[((rows - 140) / 110) ** 2 + ((columns - 140) / 70) ** 2 <= 1] = 255.0
    drawing[(np.abs(columns - 140) < 4) & (np.abs(rows - 140) < 40)] = 0.0
    np.testing.assert_array_equal(without_desk(drawing), drawing)


def _shadowed_page(edge_width, stroke_in_shadow):
    """A page with a stroke in the light, under a straight-edged shadow over two sides."""
    rows, columns = np.mgrid[0:300, 0:400].astype(float)
    along = columns + 0.3 * rows - 200  # The shadow's edge, turned a little.
    shade = along > 0 if edge_width == 0 else 1.0 / (1.0 + np.exp(-along / edge_width))
    light = 1.0 - 0.6 * shade
    reflected = np.full((300, 400), 0.9)
    reflected[100:200, 80:86] = 0.1
    if stroke_in_shadow:
        reflected[60:140, 330:336] = 0.1
    return 255.0 * light * reflected + np.random.default_rng(0).normal(0, 3, (300, 400))


def test_a_soft_shadow_with_straight_edges_is_not_taken_for_a_desk():
    # Its edge leaves a continuum of greys on the border, as light falling
    # across the page does; a desk's edge is sharp.
    photo = _shadowed_page(edge_width=10, stroke_in_shadow=False)
    np.testing.assert_array_equal(without_desk(photo), photo)


def test_a_sharp_shadow_holding_a_stroke_is_not_painted_over():
    # As sharp as a desk's edge, but a stroke lies in it: paper, not a bare desk.
    photo = _shadowed_page(edge_width=0, stroke_in_shadow=True)
    np.testing.assert_array_equal(without_desk(photo), photo)


@pytest.mark.parametrize("shape", [(3, 3), (5, 5), (6, 60)])
def test_a_tiny_image_with_a_desk_like_border_prepares_without_warnings(shape):
    # A dark band along two sides and a dot: too few pixels to show a
    # desk's straight edge, where a line fitted to 1-3 points made numpy warn.
    image = np.full(shape, 230.0)
    image[:, :max(1, shape[1] // 3)] = 20.0
    image[-1, :] = 20.0
    image[0, -1] = 20.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_mnist(image).shape == (28, 28)
