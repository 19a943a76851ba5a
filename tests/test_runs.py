"""Run folders: creating them, and refusing ones that cannot be."""

from __future__ import annotations

import pytest

from hw1_keras.errors import InputError
from hw1_keras.runs import make_run_dir, read_json, write_json


def test_make_run_dir_creates_and_reuses_a_folder(tmp_path):
    path = make_run_dir(str(tmp_path / "a" / "run"), "task")
    assert path.is_dir()
    write_json(path / "metrics.json", {"kept": 1})
    assert make_run_dir(str(path), "task") == path
    assert read_json(path / "metrics.json") == {"kept": 1}


@pytest.mark.parametrize("where, message", [
    ("file", "exists and is not a folder"),
    ("file/run", "cannot create the folder"),  # A parent that is a file.
])
def test_unusable_out_folders_get_one_line(tmp_path, where, message):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InputError) as error:
        make_run_dir(str(tmp_path / where), "task")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"--out {tmp_path / where}:")
