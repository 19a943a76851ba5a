"""The embedded regression data and users' CSV files."""

from __future__ import annotations

import numpy as np
import pytest

from hw1_keras.errors import InputError
from hw1_keras.regression import data, family
from hw1_keras.regression.data import (
    GAPS, X_RANGE, Split, generate, in_gaps, load, read_csv, target_function, write_csv,
)


@pytest.fixture(scope="module")
def splits():
    return generate(2020)


def test_sizes_shapes_and_dtypes(splits):
    train, test = splits
    assert len(train) == 100 and len(test) == 100
    for split in splits:
        assert split.x.shape == (100, 1) and split.y.shape == (100, 1)
        assert split.x.dtype == np.float32 and split.y.dtype == np.float32


def test_inputs_within_range_and_sorted(splits):
    for split in splits:
        assert split.x.min() >= X_RANGE[0] and split.x.max() <= X_RANGE[1]
        assert np.all(np.diff(split.x[:, 0]) >= 0)
    # The training points cover the range, not just one cluster.
    train = splits[0]
    assert train.x.min() < -4 and train.x.max() > 4


def test_no_training_point_inside_the_gaps(splits):
    train = splits[0]
    for lo, hi in GAPS:
        assert not np.any((train.x > lo) & (train.x < hi)), (lo, hi)
    assert not in_gaps(train.x).any()


def test_test_points_fall_inside_the_gaps(splits):
    test = splits[1]
    inside = in_gaps(test.x)
    assert inside.sum() >= 20
    for lo, hi in GAPS:  # Each gap on its own is probed.
        assert np.sum((test.x > lo) & (test.x < hi)) >= 5, (lo, hi)


def test_in_gaps_mask():
    x = np.array([[-5.0], [-2.0], [0.0], [2.5], [-3.0], [3.2]])
    assert in_gaps(x).tolist() == [False, True, False, True, False, False]
    assert in_gaps(x, gaps=[(-0.5, 0.5)]).tolist() == [False, False, True, False, False, False]


def test_noise_levels(splits):
    train, test = splits
    train_sd = np.std(train.y[:, 0] - target_function(train.x[:, 0]))
    test_sd = np.std(test.y[:, 0] - target_function(test.x[:, 0]))
    assert 0.38 < train_sd < 0.62, train_sd
    assert 0.07 < test_sd < 0.13, test_sd


def test_target_function_is_not_a_line():
    x = np.linspace(-5, 5, 11)
    y = target_function(x)
    assert y.shape == x.shape
    slopes = np.sign(np.diff(y))
    assert (slopes > 0).any() and (slopes < 0).any()


def test_generation_is_deterministic_per_seed():
    a_train, a_test = generate(2020)
    b_train, b_test = generate(2020)
    np.testing.assert_array_equal(a_train.x, b_train.x)
    np.testing.assert_array_equal(a_train.y, b_train.y)
    np.testing.assert_array_equal(a_test.x, b_test.x)
    np.testing.assert_array_equal(a_test.y, b_test.y)
    c_train, c_test = generate(7)
    assert not np.array_equal(a_train.x, c_train.x)
    assert not np.array_equal(a_test.y, c_test.y)


def test_load_defaults_to_embedded_data():
    train, test = load(None, None, 2020)
    np.testing.assert_array_equal(train.y, generate(2020)[0].y)
    np.testing.assert_array_equal(test.x, generate(2020)[1].x)


# --- CSV -------------------------------------------------------------------


def test_csv_round_trip(tmp_path, splits):
    train = splits[0]
    path = tmp_path / "train.csv"
    write_csv(train, path)
    assert path.read_text().splitlines()[0] == "input,label"
    back = read_csv(path)
    np.testing.assert_array_equal(back.x, train.x)  # repr(float) is exact
    np.testing.assert_array_equal(back.y, train.y)
    assert back.x.dtype == np.float32 and back.x.shape == (100, 1)


def test_headerless_two_column_csv(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("1.5,2\n-3,4.25\n\n0,0\n")
    split = read_csv(path)
    assert split.x[:, 0].tolist() == [1.5, -3.0, 0.0]
    assert split.y[:, 0].tolist() == [2.0, 4.25, 0.0]


def test_header_is_case_and_space_insensitive(tmp_path):
    path = tmp_path / "spaced.csv"
    path.write_text(" Input , LABEL \n1, 2\n")
    split = read_csv(path)
    assert split.x.shape == (1, 1) and float(split.y[0, 0]) == 2.0


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("input,label\r\n1,2\r\n3,4\r\n".encode("utf-8-sig"))
    assert read_csv(path).x[:, 0].tolist() == [1.0, 3.0]


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.csv"
    path.write_text("input,label\n1,2\n")

    def denied(*args, **kwargs):  # As for a file without read permission (tests run as root).
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(InputError, match="cannot be read .Permission denied.") as caught:
        read_csv(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_load_reads_users_files(tmp_path):
    train, test = tmp_path / "a.csv", tmp_path / "b.csv"
    train.write_text("input,label\n0,1\n1,2\n2,3\n")
    test.write_text("input,label\n5,6\n")
    got_train, got_test = load(str(train), str(test), 2020)
    assert got_train.x[:, 0].tolist() == [0, 1, 2]
    assert got_test.y[:, 0].tolist() == [6]


BAD_FILES = [
    # (name, content, min_rows, expected fragments after the path)
    ("empty", "", 1, ["empty"]),
    ("blank", "\n  \n", 1, ["empty"]),
    ("wrong_header", "x,y\n1,2\n", 1, ["row 1", "header input,label"]),
    ("columns", "input,label\n1,2\n3,4,5\n", 1, ["row 3", "3 columns", "expected 2"]),
    ("one_column", "input,label\n1\n", 1, ["row 2 has 1 column; expected 2"]),
    ("non_numeric", "input,label\n1,2\n3,abc\n4,5\n", 1, ["row 3", "label", "'abc'",
                                                          "not a number"]),
    ("non_numeric_input", "input,label\n1,2\n2,3\noops,5\n", 1, ["row 4", "input", "'oops'"]),
    ("nan", "input,label\n1,2\nnan,3\n", 1, ["row 3", "input", "not a finite number"]),
    ("inf", "input,label\n1,2\n2,-inf\n", 1, ["row 3", "label", "not a finite number"]),
    ("float32_overflow", "input,label\n1,2\n2,1e39\n", 1, ["row 3", "label", "'1e39'",
                                                           "beyond float32's range"]),
    ("too_few", "input,label\n1,2\n", 2, ["1 data row; need at least 2"]),
    ("header_only", "input,label\n", 1, ["0 data rows", "at least 1"]),
]


@pytest.mark.parametrize("name, content, min_rows, fragments", BAD_FILES,
                         ids=[b[0] for b in BAD_FILES])
def test_bad_csv_raises_input_error_naming_file_and_row(tmp_path, name, content, min_rows,
                                                       fragments):
    path = tmp_path / f"{name}.csv"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        read_csv(path, min_rows=min_rows)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "\n" not in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match="no such file") as caught:
        read_csv(path)
    assert str(path) in str(caught.value)


def test_a_folder_is_reported_as_a_folder_not_a_missing_file(tmp_path):
    with pytest.raises(InputError) as caught:
        read_csv(tmp_path)
    assert str(caught.value) == (f"{tmp_path}: is a folder, not a file; pass a CSV file with "
                                 "columns input,label")


def test_binary_file_is_an_input_error(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81\x92garbage")
    with pytest.raises(InputError) as caught:
        read_csv(path)
    assert str(path) in str(caught.value)


def test_training_file_needs_two_rows(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("input,label\n1,2\n")
    test.write_text("input,label\n1,2\n")
    with pytest.raises(InputError, match="need at least 2") as caught:
        load(str(train), str(test), 0)
    assert str(train) in str(caught.value)
    # A single test row is enough.
    train.write_text("input,label\n1,2\n3,4\n")
    assert len(load(str(train), str(test), 0)[1]) == 1


def test_split_len():
    assert len(Split(np.zeros((3, 1), np.float32), np.zeros((3, 1), np.float32))) == 3
    assert data.MIN_TRAIN_ROWS == 2


# --- The benchmark family -----------------------------------------------------------

def test_the_family_is_the_same_every_time_and_covers_every_combination():
    first, again = family.family(), family.family()
    assert len(first) == 24 == len({member.name for member in first})
    for a, b in zip(first, again):
        assert a.name == b.name
        np.testing.assert_array_equal(a.train.x, b.train.x)
        np.testing.assert_array_equal(a.test.y, b.test.y)
    assert {member.name.split("/")[0] for member in first} == set(family.FAMILY_SHAPES)
    assert {member.name.split("/")[1] for member in first} == \
        {layout.name for layout in family.FAMILY_LAYOUTS}
    other = family.family(seed=family.FAMILY_SEED + 100)
    assert not np.array_equal(other[0].train.x, first[0].train.x)


@pytest.mark.parametrize("index", range(24))
def test_each_family_set_has_its_two_dark_intervals(index):
    member = family.family()[index]
    assert len(member.gaps) == 2
    widths = sorted(hi - lo for lo, hi in member.gaps)
    assert widths[0] < widths[1]  # Of different widths.
    train, test = member.train.x[:, 0], member.test.x[:, 0]
    assert len(train) == len(test) == 100
    assert not in_gaps(train, member.gaps).any()
    for gap in member.gaps:  # Dark for training, measured by the test.
        assert in_gaps(test, [gap]).sum() >= 3
        # Inside the training range: interpolation, with training points on both sides.
        assert train.min() < gap[0] and gap[1] < train.max()
    # Test points spread over the training range only.
    assert train.min() <= test.min() and test.max() <= train.max()
    # The training noise is the set's (sd 0.3 or 0.7), the test's sd 0.1.
    shape = family.FAMILY_SHAPES[member.name.split("/")[0]]
    noise_sd = float(member.name.rsplit("sd", 1)[1])
    assert np.std(member.train.y[:, 0] - shape(train)) == pytest.approx(noise_sd, rel=0.25)
    assert np.std(member.test.y[:, 0] - shape(test)) == pytest.approx(0.1, rel=0.3)
