"""A battery of bad inputs: each ends in one line on stderr, exit status 2, and harms nothing.

Every case runs against a finished run folder (a tiny regression run made
once for the module), whose every file is hashed before and after: a bad
flag, file or folder must leave it as it was. Most cases are refused before
TensorFlow is imported; they run in this process through `hw1_keras.cli.main`
with TensorFlow's import made to fail, so a case that got that far fails the
test instead of training. The few that need TensorFlow (divergence, a run
folder holding other settings, predicting from a model) run as subprocesses.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from hw1_keras import cli as cli_module
from hw1_keras import process as process_module
from hw1_keras import runs, write_errors
from hw1_keras.errors import InputError


def digest(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under `folder`, by relative path."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished regression run: the folder no bad input may touch.

    Made in this process, like the cases that need TensorFlow: one import of
    it for the module, where a subprocess per case would pay for its own.
    """
    folder = tmp_path_factory.mktemp("finished") / "run"
    assert run_cli("regression", "--epochs", "2", "--log-every", "1", "--jit", "off",
                   "--out", folder) == 0
    assert (folder / "metrics.json").is_file()
    return folder


def _npz(path: Path, **changes) -> str:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
              "y_train": np.arange(60) % 10,
              "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_test": np.arange(20) % 10}
    arrays.update(changes)
    for key in [key for key, value in arrays.items() if value is None]:
        del arrays[key]
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad (and a few good) input files by name; a FIFO and a socket among them."""
    root = tmp_path_factory.mktemp("inputs")
    made = {"root": str(root), "folder": str(root), "missing": str(root / "missing.csv")}
    os.mkfifo(root / "fifo")
    made["fifo"] = str(root / "fifo")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "socket"))
    made["socket"] = str(root / "socket")
    csvs = {
        "good": "input,label\n1,2\n2,3\n3,4\n",
        "empty": "",
        "header": "x,y\n1,2\n2,3\n",
        "nan": "input,label\n1,2\n2,nan\n",
        "one_row": "input,label\n1,2\n",
        "columns": "input,label\n1,2,3\n2,3\n",
        "huge": "input,label\n1,2\n1e39,3\n",
    }
    for name, text in csvs.items():
        (root / f"{name}.csv").write_text(text)
        made[name] = str(root / f"{name}.csv")
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    made["binary"] = str(root / "binary.csv")
    made["newline"] = str(root / "new\nline.csv")
    made["long"] = str(root / ("a" * 300))
    os.symlink(root / "loop", root / "loop")
    made["loop"] = str(root / "loop")
    npzs = {
        "npz_ok": {},
        "npz_x0d": {"x_train": np.array(7, np.uint8)},
        "npz_y2d": {"y_train": np.zeros((60, 1), np.int64)},
        "npz_float": {"x_train": np.zeros((60, 28, 28), np.float32)},
        "npz_label12": {"y_train": np.full(60, 12)},
        "npz_missing": {"y_test": None},
        "npz_objects": {"y_train": np.array([object()] * 60)},
        "npz_no_images": {"x_test": np.zeros((0, 28, 28), np.uint8),
                          "y_test": np.zeros(0, np.int64)},
    }
    for name, changes in npzs.items():
        made[name] = _npz(root / f"{name}.npz", **changes)
    whole = Path(made["npz_ok"]).read_bytes()
    (root / "torn.npz").write_bytes(whole[: len(whole) // 3])
    made["npz_torn"] = str(root / "torn.npz")
    (root / "text.npz").write_text("not an archive")
    made["npz_text"] = str(root / "text.npz")
    np.save(root / "lone.npy", np.zeros((3, 28, 28), np.uint8))
    made["npz_lone"] = str(root / "lone.npy")
    yield made
    listener.close()


# (id, argv, a fragment the one line must hold). {run}: the finished run
# folder; {name}: a file from `files`; {tmp}: a fresh folder for the case.
FAST = [
    # regression: numbers, negative ones included, on every numeric flag
    ("reg_negative_weight_decay", "regression --weight-decay -1e-3",
     "--weight-decay got -0.001; expected a finite number >= 0"),
    ("reg_negative_units_list", "regression --units -3,4", "--units got -3,4; expected"),
    ("reg_negative_lr", "regression --lr -1e-3", "--lr got -0.001"),
    ("reg_minus_inf_lr", "regression --lr -inf", "--lr got -inf"),
    ("reg_nan_lr", "regression --lr nan", "--lr got nan"),
    ("reg_inf_lr", "regression --lr inf", "--lr got inf"),
    ("reg_zero_lr", "regression --lr 0", "--lr got 0.0"),
    ("reg_nan_weight_decay", "regression --weight-decay nan", "--weight-decay got nan"),
    ("reg_negative_epochs", "regression --epochs -5", "--epochs got -5"),
    ("reg_huge_epochs", "regression --epochs 99999999999999999999",
     "expected a whole number from 1 to 2,147,483,647"),
    ("reg_fractional_epochs", "regression --epochs 1.5", "expected an integer"),
    ("reg_negative_batch", "regression --batch-size -1", "--batch-size got -1"),
    ("reg_zero_batch", "regression --batch-size 0", "--batch-size got 0"),
    ("reg_negative_log_every", "regression --log-every -1", "--log-every got -1"),
    ("reg_negative_seed", "regression --seed -1", "--seed got -1"),
    ("reg_huge_seed", "regression --seed 4294967296", "--seed got 4294967296"),
    ("reg_negative_data_seed", "regression --data-seed -3", "--data-seed got -3"),
    ("reg_units_too_many_parameters", "regression --units 99999999999",
     "parameters; the limit is 100,000,000"),
    ("reg_units_too_many_activations", "regression --units 10000000 --activations selu",
     "activation values"),
    ("reg_units_not_a_number", "regression --units 16,abc", "'abc'"),
    ("reg_units_empty_list", "regression --units ,", "comma-separated list"),
    ("reg_activations_count", "regression --activations relu", "one activation per hidden"),
    ("reg_activation_name", "regression --activations selu,bogus", "names from"),
    ("reg_missing_flag_value", "regression --epochs", "expected one argument"),
    ("reg_unknown_flag", "regression --bogus 3", "unrecognized arguments: --bogus 3"),
    ("reg_cpu_devices", "regression --cpu-devices 0", "--cpu-devices got 0"),
    ("reg_precision", "regression --precision bogus", "--precision got bogus"),
    # regression: input files
    ("reg_train_without_test", "regression --train {good}", "--train and --test together"),
    ("reg_train_fifo", "regression --train {fifo} --test {good}",
     "is not a regular file (a FIFO)"),
    ("reg_test_dev_null", "regression --train {good} --test /dev/null",
     "--test /dev/null: is not a regular file (a character device)"),
    ("reg_train_socket", "regression --train {socket} --test {good}",
     "is not a regular file (a socket)"),
    ("reg_train_missing", "regression --train {missing} --test {good}", "no such file"),
    ("reg_train_folder", "regression --train {folder} --test {good}", "is a folder"),
    ("reg_train_empty", "regression --train {empty} --test {good}", "the file is empty"),
    ("reg_train_header", "regression --train {header} --test {good}",
     "expected the header input,label"),
    ("reg_train_nan", "regression --train {nan} --test {good}", "not a finite number"),
    ("reg_train_one_row", "regression --train {one_row} --test {good}", "need at least 2"),
    ("reg_train_columns", "regression --train {columns} --test {good}", "has 3 columns"),
    ("reg_train_binary", "regression --train {binary} --test {good}", "not a readable text CSV"),
    ("reg_train_huge_value", "regression --train {huge} --test {good}",
     "beyond float32's range"),
    ("reg_train_newline_in_name", "regression --train {newline} --test {good}",
     "new\\nline.csv: no such file"),
    ("reg_train_name_too_long", "regression --train {long} --test {good}",
     f"cannot be read ({os.strerror(errno.ENAMETOOLONG)}); pass a CSV file"),
    ("reg_test_link_loop", "regression --train {good} --test {loop}",
     f"--test {{loop}}: cannot be read ({os.strerror(errno.ELOOP)})"),
    # regression: the run folder
    ("reg_out_empty", ["regression", "--out="], "--out: got ''"),
    ("reg_out_is_a_device", "regression --out /dev/null", "exists and is not a folder"),
    ("reg_out_under_a_device", "regression --out /dev/null/run",
     "cannot create the folder (Not a directory"),
    ("reg_out_under_proc", "regression --out /proc/hw1-keras-run", "cannot create the folder"),
    ("reg_out_under_a_file", "regression --out {good}/run", "cannot create the folder"),
    ("reg_out_name_too_long", "regression --out {long}",
     f"cannot be used ({os.strerror(errno.ENAMETOOLONG)})"),
    ("reg_out_link_loop", "regression --out {loop}/run", "cannot be used"),
    # regression --tune
    ("tune_trials_without_tune", "regression --trials 5", "--trials applies to a search"),
    ("tune_one_fold", "regression --tune --folds 1", "needs a whole number of folds >= 2"),
    ("tune_negative_folds", "regression --tune --folds -2", "'-2': k-fold"),
    ("tune_negative_trials", "regression --tune --trials -1",
     "'-1' is not a whole number >= 0"),
    ("tune_cv_choice", "regression --tune --cv bogus", "invalid choice: 'bogus'"),
    ("tune_mirrored", "regression --tune --distribute mirrored", "applies to a plain run"),
    ("tune_train_fifo", "regression --tune --train {fifo} --test {good}",
     "is not a regular file (a FIFO)"),
    ("tune_negative_lr", "regression --tune --lr -1e-3", "--lr got -0.001"),
    ("tune_out_is_a_device", "regression --tune --out /dev/null",
     "exists and is not a folder"),
    # mnist: the data file
    ("mnist_data_fifo", "mnist --data {fifo}", "--data {fifo}: is not a regular file (a FIFO)"),
    ("mnist_data_dev_null", "mnist --data /dev/null", "is not a regular file (a character"),
    ("mnist_data_missing", "mnist --data {missing}", "no such file"),
    ("mnist_data_folder", "mnist --data {folder}", "is a folder, not a file"),
    ("mnist_data_link_loop", "mnist --data {loop}", "cannot be read (Too many levels"),
    ("mnist_data_empty_path", ["mnist", "--data", ""], "--data got an empty path"),
    ("mnist_x_train_0d", "mnist --data {npz_x0d}", "x_train is uint8 (); expected uint8"),
    ("mnist_y_train_2d", "mnist --data {npz_y2d}", "y_train is int64 (60, 1)"),
    ("mnist_x_train_float", "mnist --data {npz_float}", "x_train is float32"),
    ("mnist_label_12", "mnist --data {npz_label12}", "y_train[0] is 12; labels must be 0-9"),
    ("mnist_missing_array", "mnist --data {npz_missing}", "missing arrays y_test"),
    ("mnist_object_arrays", "mnist --data {npz_objects}", "holds object (pickled) arrays"),
    ("mnist_no_test_images", "mnist --data {npz_no_images}", "x_test holds no images"),
    ("mnist_torn_archive", "mnist --data {npz_torn}", "not a readable .npz"),
    ("mnist_not_an_archive", "mnist --data {npz_text}", "not an .npz file"),
    ("mnist_lone_npy", "mnist --data {npz_lone}", "a single uint8 array of shape (3, 28, 28)"),
    ("mnist_validation_too_large", "mnist --data {npz_ok}",
     "--validation-size got 12000; expected between 1 and 59"),
    # mnist: flags
    ("mnist_filters_too_many_parameters", "mnist --filters 100000",
     "--filters 100000 --dense-units 1024: the network would have"),
    ("mnist_dense_units_too_many_parameters", "mnist --dense-units 99999999999",
     "parameters; the limit is 100,000,000"),
    ("mnist_filters_too_many_activations", "mnist --filters 100000 --dense-units 1",
     "activation values"),
    ("mnist_four_blocks", "mnist --filters 32,64,128,256", "1 to 3 filter counts"),
    ("mnist_negative_filters", "mnist --filters -32", "--filters got -32"),
    ("mnist_negative_dropout", "mnist --dropout -0.1", "--dropout got -0.1"),
    ("mnist_negative_rotation", "mnist --rotation -5", "--rotation got -5.0"),
    ("mnist_ema_momentum", "mnist --ema-momentum 0.3", "--ema-momentum got 0.3"),
    ("mnist_label_smoothing", "mnist --label-smoothing 1", "--label-smoothing got 1.0"),
    ("mnist_zero_validation", "mnist --validation-size 0", "--validation-size got 0"),
    ("mnist_negative_batch", "mnist --batch-size -128", "--batch-size got -128"),
    ("mnist_negative_lr", "mnist --lr -2e-3", "--lr got -0.002"),
    ("mnist_tune_studies", "mnist --tune --studies bogus", "comma-separated list of"),
    ("mnist_tune_negative_epochs", "mnist --tune --epochs-per-trial -1",
     "'-1' is not a whole number >= 1"),
    ("mnist_trial_images_without_tune", "mnist --trial-images 5",
     "--trial-images applies to a search"),
    ("mnist_out_is_a_device", "mnist --data {npz_ok} --validation-size 10 --out /dev/null",
     "exists and is not a folder"),
    # predict
    ("predict_without_model", "predict 1", "--model"),
    ("predict_input_fifo", "predict --model {run}/saved_model --input {fifo}",
     "--input {fifo}: is not a regular file (a FIFO)"),
    ("predict_image_fifo", "predict --model {run}/saved_model {fifo}",
     "is not a regular file (a FIFO)"),
    ("predict_model_fifo", "predict --model {fifo} 1", "--model {fifo}: is not a regular file"),
    ("predict_mistyped_flag", "predict --model {run}/saved_model -x",
     "unrecognized arguments: -x"),
    # bench
    ("bench_data_for_regression", "bench regression --data x.npz",
     "--data applies to bench mnist"),
    ("bench_data_fifo", "bench mnist --data {fifo}", "is not a regular file (a FIFO)"),
    ("bench_data_0d", "bench mnist --data {npz_x0d}", "x_train is uint8 ()"),
    ("bench_negative_seeds", "bench regression --seeds -2", "'-2' is not a whole number >= 1"),
    ("bench_parts", "bench mnist --parts bogus", "comma-separated list of"),
    ("bench_task", "bench bogus", "invalid choice: 'bogus'"),
    ("bench_resume_epochs", "bench mnist --resume-epochs 0", "'0' is not a whole number"),
    ("bench_out_is_a_device", "bench tune --out /dev/null", "exists and is not a folder"),
    ("bench_model_dev_null", "bench photos --model /dev/null --data {npz_ok}",
     "--model /dev/null: is not a regular file"),
]


def _argv(template, files, finished, tmp):
    words = template.split(" ") if isinstance(template, str) else list(template)
    return [word.format(run=finished, tmp=tmp, **files) for word in words]


def _no_tensorflow():
    raise AssertionError("TensorFlow was imported: this case was not refused before it")


def run_main(argv, monkeypatch, capsys) -> tuple[int, list[str], str]:
    """`main(argv)` with TensorFlow's import made to fail: exit status, stderr's lines, stdout."""
    monkeypatch.setattr(process_module, "import_tensorflow_quietly", _no_tensorflow)
    capsys.readouterr()
    status = run_cli(*argv)
    captured = capsys.readouterr()
    return status, captured.err.splitlines(), captured.out


def assert_refused(status, lines, fragment):
    assert status == 2, (status, lines)
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert ": error: " in lines[0], lines[0]
    assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("template, fragment", [case[1:] for case in FAST],
                         ids=[case[0] for case in FAST])
def test_bad_input_is_refused_before_tensorflow(template, fragment, files, finished, tmp_path,
                                                monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # A default run folder would land here.
    before = digest(finished)
    argv = _argv(template, files, finished, tmp_path)
    status, lines, _ = run_main(argv, monkeypatch, capsys)
    assert_refused(status, lines, fragment.format(run=finished, **files))
    assert digest(finished) == before
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("extra", [[], ["--tune"]], ids=["plain", "tune"])
@pytest.mark.integration
def test_a_folder_that_takes_no_files_is_refused(extra, finished, tmp_path, monkeypatch, capsys):
    """An immutable folder (chattr +i): even root cannot write in it."""
    folder = tmp_path / "immutable"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        before = digest(finished)
        status, lines, _ = run_main(["regression", *extra, "--out", str(folder)],
                                    monkeypatch, capsys)
        assert_refused(status, lines, f"--out {folder}: cannot write in the folder ("
                                      f"{os.strerror(errno.EPERM)})")
        status, lines, _ = run_main(["regression", *extra, "--out", str(folder / "run")],
                                    monkeypatch, capsys)
        assert_refused(status, lines, "cannot create the folder")
        assert digest(finished) == before
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs: `(mount point, remount(options))`; skipped where none can be mounted."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)

    try:
        yield point, remount
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_a_read_only_file_system_is_refused(small_tmpfs, finished, monkeypatch, capsys):
    point, remount = small_tmpfs
    (point / "old").mkdir()
    remount("ro")
    for out, fragment in ((point / "old", "cannot write in the folder"),
                          (point / "new", "cannot create the folder")):
        status, lines, _ = run_main(["regression", "--out", str(out)], monkeypatch, capsys)
        assert_refused(status, lines, f"{fragment} ({os.strerror(errno.EROFS)}")


@pytest.mark.integration  # A whole command, in this process.
def test_a_full_disk_ends_in_one_line_and_the_rerun_finishes_the_run(small_tmpfs, finished,
                                                                     capsys):
    point, remount = small_tmpfs
    out = point / "run"
    argv = ["regression", "--epochs", "2", "--log-every", "1", "--jit", "off", "--out", out]
    capsys.readouterr()
    status = run_cli(*argv)
    lines = capsys.readouterr().err.splitlines()
    assert_refused(status, lines, f"run.py regression: error: --out {out}: could not write")
    assert os.strerror(errno.ENOSPC) in lines[0] and "rerun the same command" in lines[0]
    # Unfinished, and recognized as this run's: its settings, no metrics.json.
    assert (out / "config.json").is_file() and not (out / "metrics.json").exists()
    assert not list(out.glob("*.json.partial"))
    remount("size=4m")
    assert run_cli(*argv) == 0
    assert (out / "metrics.json").is_file() and (out / "saved_model" / "saved_model.pb").is_file()


@pytest.mark.integration  # Two small searches, in this process.
def test_a_disk_that_fills_during_a_search_leaves_it_resumable(small_tmpfs, tmp_path,
                                                               monkeypatch, capsys):
    """Full in the grid stage: one line; every state file whole; the rerun ends as one run."""
    import tuning.regression_space

    monkeypatch.setattr(tuning.regression_space, "GRID_FACTORS", (1.0, 3.0))
    point, remount = small_tmpfs
    remount("size=40k")  # The first two stages fit; the grid's trials do not.
    search = ["regression", "--tune", "--trials", "1", "--folds", "2", "--epochs", "4",
              "--log-every", "2", "--jit", "off"]
    out = point / "run"
    capsys.readouterr()
    status = run_cli(*search, "--out", out)
    lines = capsys.readouterr().err.splitlines()
    assert_refused(status, lines, f"--out {out}: could not write")
    assert os.strerror(errno.ENOSPC) in lines[0] and "rerun the same command" in lines[0]
    assert not (out / "tuning.json").exists()  # Stopped inside the search.
    states = list((out / "tuning").rglob("*.json"))
    assert states and not list(out.rglob("*.partial"))
    for state in states:  # Whole, and no trial marked failed by the full disk.
        assert json.loads(state.read_text()).get("status") in (None, "RUNNING", "COMPLETED")
    remount("size=8m")
    assert run_cli(*search, "--out", out) == 0
    assert run_cli(*search, "--out", tmp_path / "uninterrupted") == 0

    def trials(folder):
        stages = json.loads((folder / "tuning.json").read_text())["stages"]
        return [[(t["hyperparameters"], t["fold_scores"]) for t in stage["trials"]]
                for stage in stages]

    assert trials(out) == trials(tmp_path / "uninterrupted")


# --- failures found after TensorFlow is imported -------------------------------

SLOW = [
    ("diverging_lr",
     "regression --lr 1e10 --epochs 200 --log-every 100 --jit off --out {tmp}/div",
     "over 100 times its start 3.012) with --lr 1e+10; try a smaller one, e.g. --lr 0.0004, "
     "and check that the data's values are not huge (stopped after 100 epochs)"),
    ("out_holds_another_seed", "regression --out {run} --epochs 2 --log-every 1 --seed 5",
     "holds a run with other settings (seed 0 -> 5)"),
    ("out_holds_other_epochs", "regression --out {run} --epochs 3 --log-every 1",
     "holds a run with other settings (epochs 2 -> 3)"),
    ("predict_no_such_model", "predict --model {tmp}/missing 1", "no such folder"),
    ("predict_no_inputs", "predict --model {run}/saved_model", "no inputs"),
    ("tune_more_folds_than_points", "regression --tune --trials 0 --folds 10 --epochs 2 "
     "--train {good} --test {good} --out {tmp}/tune", "--folds"),
]


@pytest.mark.parametrize("template, fragment", [case[1:] for case in SLOW],
                         ids=[case[0] for case in SLOW])
def test_bad_input_found_after_tensorflow_is_one_line(template, fragment, files, finished,
                                                      tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = digest(finished)
    capsys.readouterr()
    status = run_cli(*_argv(template, files, finished, tmp_path))
    assert_refused(status, capsys.readouterr().err.splitlines(), fragment.format(tmp=tmp_path))
    assert digest(finished) == before
    assert [path.name for path in tmp_path.iterdir()] == []  # A failed run leaves no folder.


@pytest.mark.integration
def test_bad_files_are_refused_before_tensorflow_is_imported(files, repo_root):
    """In a fresh process: refused, and no TensorFlow imported."""
    cases = [["mnist", "--data", files["npz_x0d"]], ["mnist", "--data", files["fifo"]],
             ["regression", "--train", files["nan"], "--test", files["good"]],
             ["mnist", "--data", files["npz_ok"]]]
    script = (
        "import contextlib, io, json, sys\n"
        "from hw1_keras.cli import main\n"
        f"for argv in {cases!r}:\n"
        "    with contextlib.redirect_stderr(io.StringIO()):\n"
        "        assert main(argv) == 2, argv\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=repo_root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["tensorflow"] is False  # How fast: `python run.py bench inputs`.


# --- out of memory and failed writes, in this process ---------------------------


def _fake_run(monkeypatch, failure):
    """Replaces the regression's `run` with one that opens its folder and fails."""
    def run(config, out, device):
        runs.make_run_dir(out, "regression")
        raise failure(Path(out))

    monkeypatch.setitem(sys.modules, "hw1_keras.regression.train",
                        types.SimpleNamespace(run=run))
    monkeypatch.setattr(process_module, "import_tensorflow_quietly", lambda: None)


def _main_lines(argv, capsys) -> tuple[int, list[str]]:
    status = cli_module.main(argv)
    return status, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("failure, fragment", [
    (lambda out: MemoryError("Unable to allocate 37.3 GiB for an array"),
     "out of memory (Unable to allocate 37.3 GiB); try fewer or narrower --units"),
    (lambda out: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "fit.png")),
     "could not write fit.png (No space left on device); the run is not finished: free some"),
    (lambda out: OSError(errno.EROFS, os.strerror(errno.EROFS), str(out / "loss.png")),
     "could not write loss.png (Read-only file system)"),
    (lambda out: InputError("training diverged (loss nan) with --lr 1e+10"),
     "training diverged"),
], ids=["memory", "disk_full", "read_only", "diverged"])
def test_a_run_that_fails_is_one_line_and_leaves_no_empty_folder(failure, fragment, tmp_path,
                                                                 monkeypatch, capsys):
    _fake_run(monkeypatch, failure)
    out = tmp_path / "new"
    status, lines = _main_lines(["regression", "--out", str(out)], capsys)
    assert_refused(status, lines, fragment)
    assert not out.exists()


def test_a_write_failure_without_a_file_name_is_the_run_folders_when_its_disk_is_full(
        tmp_path, monkeypatch, capsys):
    # PIL's and Python's buffered writes say only "No space left on device".
    _fake_run(monkeypatch, lambda out: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 100, 0, 0, 0, 255))
    monkeypatch.setattr(write_errors.os, "statvfs", lambda path: full)
    status, lines = _main_lines(["regression", "--out", str(tmp_path / "run")], capsys)
    assert_refused(status, lines, f"--out {tmp_path / 'run'}: could not write the results "
                                  "(No space left on device)")


def test_an_os_error_about_another_file_is_not_taken_for_the_run_folders(tmp_path,
                                                                        monkeypatch):
    elsewhere = tmp_path / "elsewhere" / "cache.bin"
    _fake_run(monkeypatch, lambda out: PermissionError(errno.EACCES, "Permission denied",
                                                       str(elsewhere)))
    with pytest.raises(PermissionError):  # A cause this program cannot name: its traceback.
        cli_module.main(["regression", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_failed_write_reported_again_by_a_destructor_is_dropped(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    folder = runs.make_run_dir(str(tmp_path / "run"), "regression")
    ours = OSError(errno.ENOSPC, f"file write failed, filename = '{folder}/best.weights.h5'")
    other = ValueError("something else")
    with process_module._reported_once():
        for error in (ours, other):
            sys.unraisablehook(types.SimpleNamespace(exc_value=error))
    assert [item.exc_value for item in seen] == [other]


# --- the divergence rule --------------------------------------------------------


def test_divergence_rule():
    from hw1_keras.training import divergence, lower_rate

    assert divergence(0.27, start=3.0) is None  # The default recipe's last block.
    assert divergence(17.0, start=3.0) is None  # --lr 1: poor, not diverged.
    assert divergence(2.2e22, start=3.0) == "loss 2.2e+22, over 100 times its start 3"
    assert divergence(float("nan"), start=3.0) == "loss nan"
    assert divergence(float("inf"), start=None) == "loss inf"
    assert divergence(1e9, start=None) is None  # No start known: only non-finite counts.
    assert divergence(301.0, start=3.0) is not None and divergence(299.0, start=3.0) is None
    assert lower_rate(1e10, default=4e-4) == 4e-4 and lower_rate(1e-4, default=4e-4) == 1e-5


def test_the_divergence_check_leaves_a_healthy_training_as_it_was(tiny_config, monkeypatch):
    """Its start-up test step must not disturb the first block's logged metrics."""
    from hw1_keras.regression import train

    data = train.load_data(tiny_config)
    _, checked, _ = train.train_model(tiny_config, data[0], data[1], verbose=False,
                                      jit_compile=False)
    monkeypatch.setattr(train, "divergence_callbacks", lambda *args, **kwargs: [])
    _, plain, _ = train.train_model(tiny_config, data[0], data[1], verbose=False,
                                    jit_compile=False)
    assert checked.history == plain.history


def test_a_diverged_mnist_run_leaves_nothing_that_refuses_a_lower_rate(small_npz, tmp_path,
                                                                        capsys):
    out = tmp_path / "div"
    out.mkdir()  # An empty folder the user made: it stays, empty.
    argv = ["mnist", "--data", small_npz, "--validation-size", "200", "--epochs", "1",
            "--out", str(out)]
    capsys.readouterr()
    status = run_cli(*argv, "--lr", "1000")
    assert_refused(status, capsys.readouterr().err.splitlines(),
                   "training diverged (loss ")
    assert list(out.iterdir()) == []
    # So the same command with a lower rate is not refused as "other settings".
    from hw1_keras.rerun import check_run_dir

    check_run_dir(out, {"task": "mnist", "learning_rate": 0.001})
