"""hw1_keras.compat: the version check and the one-line failure of a missing private name."""

import argparse
import re

import pytest

from hw1_keras import compat
from hw1_keras.errors import InputError


def test_the_installed_versions_are_the_tested_ones():
    # The suite runs on what requirements.txt installs: if this fails, the pins
    # and compat.TESTED disagree.
    assert compat.untested("keras") is None
    assert compat.untested("keras-tuner") is None


def test_an_untested_version_is_named_in_one_line_with_what_to_install(monkeypatch):
    monkeypatch.setattr(compat, "_version", lambda package: (9, 0, 1))
    line = compat.untested("keras")
    assert "\n" not in line
    assert "keras 9.0.1 is not a version this project was tested with" in line
    assert "pip install 'keras>=3.15,<3.16'" in line


def test_the_note_is_printed_once_per_package(monkeypatch, capsys):
    monkeypatch.setattr(compat, "_version", lambda package: (9,))
    monkeypatch.setattr(compat, "_warned", set())
    compat._check("keras")
    compat._check("keras")
    assert capsys.readouterr().err.count("keras 9 is not") == 1


def test_a_private_name_that_is_gone_is_one_line_not_an_attribute_error():
    class Oracle:
        pass

    with pytest.raises(InputError, match=r"keras-tuner \S+ has no Oracle._compare, which this "
                                         r"project relies on; pip install 'keras-tuner>="):
        compat.grid_compare(Oracle(), {}, {})


def test_a_parser_reads_negative_looking_values_as_values():
    parser = argparse.ArgumentParser()
    parser.add_argument("--decay", type=float)
    with pytest.raises(SystemExit):  # argparse alone takes -1e-3 for a flag.
        parser.parse_args(["--decay", "-1e-3"])
    compat.read_negative_values(parser, re.compile(r"^-\d"))
    assert parser.parse_args(["--decay", "-1e-3"]).decay == -1e-3


def test_a_state_file_that_cannot_be_written_keeps_its_old_content(tmp_path, monkeypatch):
    import errno
    import os

    from keras_tuner.errors import FatalError
    from keras_tuner.src import utils

    original = utils.save_json
    state = tmp_path / "oracle.json"
    with compat.whole_state_files():
        assert utils.save_json is not original
        utils.save_json(str(state), {"trials": 1})
        assert state.read_text() == '{"trials": 1}'

        def full(*args):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "replace", full)
        with pytest.raises(OSError) as raised:
            utils.save_json(str(state), {"trials": 2})
    # Passed on by KerasTuner (a FatalError), not taken for the trial's own failure.
    assert isinstance(raised.value, FatalError) and raised.value.errno == errno.ENOSPC
    assert state.read_text() == '{"trials": 1}' and list(tmp_path.iterdir()) == [state]
    assert utils.save_json is original
