"""Run folders: creating them, and refusing ones that cannot be."""

from __future__ import annotations

import dataclasses
import errno
import os

import pytest

from hw1_keras import rerun, runs, write_errors
from hw1_keras.errors import InputError
from hw1_keras.rerun import check_run_dir, describe_changes
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


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_out_is_refused_rather_than_taken_for_the_default(tmp_path, monkeypatch, out):
    monkeypatch.setattr(runs, "RUNS_ROOT", tmp_path / "runs")
    with pytest.raises(InputError) as error:
        make_run_dir(out, "task")
    assert str(error.value) == (f"--out got {out!r}; expected a folder's path, or omit --out "
                                "for a new folder under runs/")
    assert not (tmp_path / "runs").exists()


def test_default_folders_of_runs_started_in_the_same_second_differ(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RUNS_ROOT", tmp_path / "runs")
    monkeypatch.setattr(runs.time, "strftime", lambda _: "20261127-120000")
    first, second = make_run_dir(None, "task"), make_run_dir(None, "task")
    assert first.name == "task-20261127-120000" and second.name == "task-20261127-120000-2"
    assert first.is_dir() and second.is_dir()


def _folder(tmp_path, config):
    path = tmp_path / "run"
    path.mkdir()
    write_json(path / "config.json", config)
    write_json(path / "metrics.json", {"test_mse": 0.1})
    return path, {p.name: p.read_bytes() for p in path.iterdir()}


def test_a_folder_takes_a_run_when_empty_or_holding_the_same_settings(tmp_path):
    check_run_dir(tmp_path / "new", {"seed": 0})
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty", {"seed": 0})
    path, _ = _folder(tmp_path, {"seed": 0, "filters": [32, 64]})
    check_run_dir(path, {"seed": 0, "filters": (32, 64)})  # As to_dict gives it.


@pytest.mark.parametrize("saved, interrupted, message", [
    ({"seed": 0, "epochs": 2}, False,
     "holds a run with other settings (epochs 2 -> 3; seed 0 -> 1); pass another "
     "--out, or delete that folder to replace its run"),
    ({"seed": 0, "epochs": 2}, True,
     "holds an interrupted run with other settings (epochs 2 -> 3; seed 0 -> 1); rerun it "
     "with its own flags to resume it"),
    ({"seed": 1, "hidden": 16}, False, "holds a run of another task; pass another --out"),
])
def test_a_folder_holding_another_run_is_refused_untouched(tmp_path, saved, interrupted,
                                                            message):
    path, before = _folder(tmp_path, saved)
    with pytest.raises(InputError) as error:
        check_run_dir(path, {"seed": 1, "epochs": 3}, interrupted=interrupted)
    assert str(error.value).startswith(f"--out {path}: {message}")
    assert "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


@pytest.mark.parametrize("saved", [
    {"seed": 1, "epochs": 3, "lr": 0.1, "bogus": 1},  # A field from another version.
    {"seed": 1, "epochs": 3},  # One from this version that the saved run lacks.
])
def test_a_run_of_the_same_task_with_other_fields_names_them(tmp_path, saved):
    path, before = _folder(tmp_path, saved)
    with pytest.raises(InputError) as error:
        check_run_dir(path, {"seed": 1, "epochs": 3, "lr": 0.1})
    changed = "bogus 1 -> unset" if "bogus" in saved else "lr unset -> 0.1"
    assert str(error.value).startswith(f"--out {path}: holds a run with other settings "
                                       f"({changed}); pass another --out")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_the_two_tasks_configurations_are_told_apart():
    from hw1_keras.config import to_dict
    from hw1_keras.mnist.config import MnistConfig
    from hw1_keras.regression.config import RegressionConfig

    regression, mnist = to_dict(RegressionConfig()), to_dict(MnistConfig())
    assert not rerun.same_task(regression, mnist) and not rerun.same_task(mnist, regression)
    for config in (regression, mnist):
        assert rerun.same_task(config, {**config, "added": 1})
        assert rerun.same_task(config, {k: v for k, v in config.items() if k != "seed"})


@pytest.mark.parametrize("content, why", [
    (b"{broken", "not valid JSON: Expecting property name enclosed in double quotes at "
                 "line 1"),
    (b"5", "a JSON number"),
    (b"[1, 2]", "a JSON array"),
    (b"{}", "no settings"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not text"),
])
def test_a_damaged_config_is_one_line_and_left_alone(tmp_path, content, why):
    path, _ = _folder(tmp_path, {"seed": 0})
    (path / "config.json").write_bytes(content)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(InputError) as error:
        check_run_dir(path, {"seed": 0})
    assert str(error.value) == (f"--out {path}: {path / 'config.json'} is not a run's config "
                                f"({why}); pass another --out")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty and holds no run"):
        check_run_dir(tmp_path, {"seed": 0})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_changes_name_nested_keys_and_stay_short():
    before = {"search": {"max_trials": 2, "folds": 3}, "config": {"seed": 0}}
    now = {"search": {"max_trials": 3, "folds": 3}, "config": {"seed": 0}, "extra": 1}
    assert describe_changes(before, now) == "extra unset -> 1; search.max_trials 2 -> 3"
    many = {f"k{i}": i for i in range(7)}
    assert describe_changes(many, {}) == (
        "k0 0 -> unset; k1 1 -> unset; k2 2 -> unset; k3 3 -> unset; and 3 more")
    assert describe_changes({"a": "x" * 100}, {"a": "y"}) == f"a {'x' * 37}... -> y"


def test_a_plain_run_in_a_tune_folder_is_told_to_add_tune(tmp_path):
    # Its config.json is the search winner's; "other settings (batch_size ...)"
    # would only list what the search chose.
    write_json(tmp_path / "config.json", {"seed": 0, "batch_size": 50})
    (tmp_path / "tuning").mkdir()
    write_json(tmp_path / "tuning" / "search.json", {"search": {}, "config": {}})
    with pytest.raises(InputError, match=r"holds a --tune search; add --tune"):
        check_run_dir(tmp_path, {"seed": 0, "batch_size": 100})
    check_run_dir(tmp_path, {"seed": 0, "batch_size": 50}, search=True)  # The winner itself.


@pytest.mark.parametrize("saved_flags, now_flags, interrupted, message", [
    # The flags' (changed fields) are named as well, so the user sees what differs.
    ({"quick": True}, {}, False,
     "holds a run made with --quick (augmented_copy 0 -> 1; epochs 3 -> 20); add --quick "
     "to rerun it, or pass another --out"),
    ({}, {"quick": True}, True,
     "holds a run made without --quick (augmented_copy 1 -> 0; epochs 20 -> 3); drop "
     "--quick to resume it, or pass another --out"),
    # --quick --epochs 5 against --epochs 5: --quick still explains it all.
    ({"quick": True, "epochs": 5}, {"epochs": 5}, False,
     "holds a run made with --quick (augmented_copy 0 -> 1); add --quick"),
])
def test_a_preset_flag_that_explains_the_difference_is_named(tmp_path, saved_flags, now_flags,
                                                             interrupted, message):
    from hw1_keras.config import to_dict
    from hw1_keras.mnist.config import MnistConfig, flag_presets, quick_preset

    def config(quick=False, **fields):
        base = quick_preset() if quick else MnistConfig()
        return to_dict(dataclasses.replace(base, **fields))

    path, before = _folder(tmp_path, config(**saved_flags))
    with pytest.raises(InputError) as error:
        check_run_dir(path, config(**now_flags), interrupted=interrupted, presets=flag_presets())
    assert str(error.value).startswith(f"--out {path}: {message}")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_a_preset_flag_is_not_named_when_other_fields_differ_too(tmp_path):
    from hw1_keras.config import to_dict
    from hw1_keras.mnist.config import MnistConfig, flag_presets, quick_preset

    path, _ = _folder(tmp_path, to_dict(dataclasses.replace(quick_preset(), seed=1)))
    with pytest.raises(InputError) as error:
        check_run_dir(path, to_dict(MnistConfig()), presets=flag_presets())
    assert "--quick" not in str(error.value)
    assert "(augmented_copy 0 -> 1; epochs 3 -> 20; seed 1 -> 0)" in str(error.value)


# --- writing: the probe, failed writes, unfinished runs --------------------------


def test_make_run_dir_leaves_no_probe_and_records_what_it_created(tmp_path):
    runs.forget_run_dirs()
    old = tmp_path / "old"
    old.mkdir()
    made = make_run_dir(str(tmp_path / "new"), "task")
    make_run_dir(str(old), "task")
    assert list(made.iterdir()) == [] and list(old.iterdir()) == []
    assert runs.opened_run_dirs() == {made: True, old: False}
    runs.discard_empty_run_dirs()  # Only what this process created goes.
    assert not made.exists() and old.is_dir()
    runs.forget_run_dirs()


def test_a_folder_that_takes_no_files_is_refused_and_a_new_one_removed(tmp_path, monkeypatch):
    def refuse(folder):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(runs, "probe", refuse)
    with pytest.raises(InputError) as error:
        make_run_dir(str(tmp_path / "new"), "task")
    assert str(error.value) == (f"--out {tmp_path / 'new'}: cannot write in the folder "
                                "(Permission denied); name a folder you can write to")
    assert not (tmp_path / "new").exists()
    with pytest.raises(InputError, match=r"cannot create the folder \(Permission denied in "):
        runs.check_out(str(tmp_path / "a" / "b"))
    assert not (tmp_path / "a").exists()


def test_check_out_touches_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    runs.check_out(str(tmp_path / "new" / "run"))
    runs.check_out(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    with pytest.raises(InputError, match="exists and is not a folder"):
        runs.check_out(str(tmp_path / "file"))
    with pytest.raises(InputError, match=r"cannot create the folder \(Not a directory in "):
        runs.check_out(str(tmp_path / "file" / "run"))


def test_a_failed_write_leaves_no_partial_file_and_names_its_file(tmp_path, monkeypatch):
    target = tmp_path / "config.json"

    class Full:
        def __init__(self, *args, **kwargs):
            self.handle = open(*args, **kwargs)

        def __enter__(self):
            return self

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # No file name, as Python's.

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(runs, "open", Full, raising=False)
    with pytest.raises(OSError) as error:
        write_json(target, {"a": 1})
    assert error.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_begin_results_unmarks_a_finished_run_and_writes_its_config_first(tmp_path):
    write_json(tmp_path / "metrics.json", {"test_mse": 0.1})
    runs.begin_results(tmp_path, {"seed": 3})
    assert not (tmp_path / "metrics.json").exists()
    assert read_json(tmp_path / "config.json") == {"seed": 3}


@pytest.mark.parametrize("error, expected", [
    (lambda run: OSError(errno.ENOSPC, "No space left on device", f"{run}/fit.png"),
     "could not write fit.png (No space left on device); the run is not finished: free some "
     "space, then rerun the same command to finish it"),
    (lambda run: PermissionError(errno.EACCES, "Permission denied", f"{run}/saved_model"),
     "could not write saved_model (Permission denied); the run is not finished: make the "
     "folder writable, then rerun the same command to finish it"),
    # TensorFlow's errors carry the path and the cause in their message only.
    (lambda run: RuntimeError(f"{{{{function_node SaveV2}}}} {run}/saved_model.partial/x; "
                              "Read-only file system [Op:SaveV2]"),
     "could not write the results (Read-only file system); the run is not finished: make "
     "its file system writable, then rerun the same command to finish it"),
    (lambda run: OSError(errno.ENOSPC, "No space left on device", "/elsewhere/cache.bin"),
     None),
], ids=["named", "permission", "in_message", "another_file"])
def test_write_failure_is_the_run_folders_only_when_it_names_it(tmp_path, error, expected):
    run = tmp_path / "run"
    run.mkdir()
    message = write_errors.write_failure(error(run), [run])
    assert message == (f"--out {run}: {expected}" if expected else None)


def test_a_nameless_write_failure_counts_when_the_folder_is_full_or_unwritable(tmp_path,
                                                                              monkeypatch):
    error = OSError(errno.ENOSPC, "No space left on device")
    full = os.statvfs_result((4096, 4096, 1000, 0, 10, 100, 0, 0, 0, 255))
    monkeypatch.setattr(write_errors.os, "statvfs", lambda path: full)
    assert "(No space left on device)" in write_errors.write_failure(error, [tmp_path])
    # Not about space, and the folder takes a probe file: not the folder's.
    assert write_errors.write_failure(OSError(errno.EIO, "I/O error"), [tmp_path]) is None
    monkeypatch.setattr(write_errors.os, "statvfs", lambda path: os.statvfs_result(
        (4096, 4096, 10**6, 10**6, 10**6, 100, 0, 0, 0, 255)))
    assert write_errors.write_failure(error, [tmp_path]) is None  # Room enough: some other disk's.

    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(runs, "probe", read_only)
    assert "(Read-only file system)" in write_errors.write_failure(OSError(None, "short write"),
                                                           [tmp_path])
