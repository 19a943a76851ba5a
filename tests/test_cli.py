"""`python run.py ...` end to end: predictions, --help, and one-line user errors.

Argument and configuration errors are answered before TensorFlow is imported,
so those subprocesses are cheap; the cases that need TensorFlow (data files,
model folders) are each run once, most in this process, and shared by the
tests that inspect them.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import in_this_process


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_user_error(result, *fragments: str) -> str:
    """Exit 2, no traceback, the error as the last stderr line; returns that line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = stderr_lines(result)
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert "error" in last, last
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


def assert_single_line(result) -> None:
    assert len(stderr_lines(result)) == 1, result.stderr


# --- --help ------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    ([], ["regression", "predict"]),
    (["regression"], ["--lr", "--batch-size", "--units", "--activations", "--log-every",
                      "--train", "--test", "--out", "(default: 50)"]),
    (["predict"], ["--model", "--input"]),
    (["bench"], ["--seeds", "regression"]),
    (["mnist"], ["--quick", "--out"]),
])
def test_help(cli, argv, expected):
    result = cli(*argv, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: run.py")
    for fragment in expected:
        assert fragment in result.stdout, fragment
    assert result.stderr == ""


# --- errors answered before TensorFlow is imported ---------------------------

FAST_ERRORS = [
    ("negative_lr", ["regression", "--lr", "-0.001"], ["--lr got -0.001", "> 0"]),
    ("batch_zero", ["regression", "--batch-size", "0"], ["--batch-size got 0"]),
    ("epochs_zero", ["regression", "--epochs", "0"], ["--epochs got 0"]),
    ("unknown_flag", ["regression", "--bogus", "3"],
     ["run.py regression: error: unrecognized arguments: --bogus 3 (see run.py regression "
      "--help)"]),
    ("epochs_not_a_number", ["regression", "--epochs", "many"], ["--epochs", "'many'"]),
    ("units_activations", ["regression", "--units", "8,8,8"], ["--activations", "(3)"]),
    ("train_without_test", ["regression", "--train", "a.csv"], ["--train", "--test"]),
    ("no_command", [], ["required"]),
    ("predict_without_model", ["predict", "1"], ["--model"]),
    ("bench_data_for_regression", ["bench", "regression", "--data", "x.npz"],
     ["--data applies to bench mnist, distribute and photos, not bench regression; "
      "leave it out"]),
    ("bench_model_for_mnist", ["bench", "mnist", "--model", "m"],
     ["--model applies to bench photos and inputs, not bench mnist; leave it out"]),
    ("bench_parts_for_tune", ["bench", "tune", "--parts", "precision"],
     ["--parts applies to bench mnist, not bench tune"]),
    ("empty_out", ["mnist", "--out", ""],
     ["run.py mnist: error: argument --out: got ''; expected a folder's path, or omit --out "
      "for the default one"]),
    ("empty_out_of_a_search", ["regression", "--tune", "--out="], ["--out: got ''"]),
    ("empty_data", ["mnist", "--data", ""], ["--data got an empty path"]),
]


def test_bench_fills_in_the_defaults_of_the_flags_it_reads():
    from hw1_keras.cli import _bench_defaults, build_parser

    args = build_parser().parse_args(["bench", "mnist", "--data", "x.npz"])
    _bench_defaults(args)
    assert (args.parts, args.resume_epochs, args.data) == (["throughput", "quick"], 4, "x.npz")
    args = build_parser().parse_args(["bench", "tune", "--cv", "random"])
    _bench_defaults(args)
    assert (args.cv, args.seeds, args.out) == ("random", None, None)


def test_bench_tune_refuses_a_folder_holding_a_search(tmp_path):
    (tmp_path / "tuning.json").write_text("{}")  # An earlier search: it would resume.
    assert_user_error(in_this_process("bench", "tune", "--out", tmp_path),
                      f"--out {tmp_path}: not empty", "new folder")
    assert [p.name for p in tmp_path.iterdir()] == ["tuning.json"]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in FAST_ERRORS],
                         ids=[c[0] for c in FAST_ERRORS])
def test_argument_errors_are_one_line(cli, argv, fragments):
    result = cli(*argv)
    assert_user_error(result, *fragments)
    assert_single_line(result)
    assert result.stdout == ""


# --- errors found after TensorFlow is imported -------------------------------


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _missing_train(cli, tiny_run, tmp):
    missing = tmp / "no_such_train.csv"
    return cli("regression", "--epochs", "1", "--train", missing, "--test", missing,
               "--out", tmp / "out"), {"path": str(missing), "out": tmp / "out"}


def _bad_row(cli, tiny_run, tmp):
    existing = tmp / "existing_run"
    shutil.copytree(tiny_run[0], existing)
    before = snapshot(existing)
    bad = tmp / "bad.csv"
    bad.write_text("input,label\n1,2\n3,abc\n4,5\n")
    result = cli("regression", "--out", existing, "--train", bad, "--test", bad,
                 "--epochs", "1", "--log-every", "1")
    return result, {"path": str(bad), "before": before, "after": snapshot(existing)}


def _out_holds_another_seed(cli, tiny_run, tmp):
    existing = tmp / "existing_run"
    shutil.copytree(tiny_run[0], existing)
    before = snapshot(existing)
    result = cli("regression", "--out", existing, "--epochs", "20", "--log-every", "10",
                 "--seed", "5")
    return result, {"path": str(existing), "before": before, "after": snapshot(existing)}


def _out_holds_another_task(cli, tiny_run, tmp):
    from hw1_keras.config import to_dict
    from hw1_keras.mnist.config import MnistConfig
    from hw1_keras.runs import write_json

    existing = tmp / "mnist_run"
    existing.mkdir()
    write_json(existing / "config.json", to_dict(MnistConfig()))
    before = snapshot(existing)
    result = cli("regression", "--out", existing, "--epochs", "1")
    return result, {"path": str(existing), "before": before, "after": snapshot(existing)}


def _out_holds_a_damaged_config(cli, tiny_run, tmp):
    existing = tmp / "existing_run"
    shutil.copytree(tiny_run[0], existing)
    (existing / "config.json").write_text("{broken")
    before = snapshot(existing)
    result = cli("regression", "--out", existing, "--epochs", "1")
    return result, {"path": str(existing / "config.json"), "before": before,
                    "after": snapshot(existing)}


def _out_holds_a_run_with_an_extra_field(cli, tiny_run, tmp):
    from hw1_keras.runs import read_json, write_json

    existing = tmp / "existing_run"
    shutil.copytree(tiny_run[0], existing)
    write_json(existing / "config.json", {**read_json(existing / "config.json"), "bogus": 1})
    before = snapshot(existing)
    result = cli("regression", "--out", existing, "--epochs", "20", "--log-every", "10")
    return result, {"path": str(existing), "before": before, "after": snapshot(existing)}


def _train_csv_is_a_folder(cli, tiny_run, tmp):
    test = tmp / "test.csv"
    test.write_text("input,label\n1,2\n")
    return cli("regression", "--epochs", "1", "--train", tmp, "--test", test,
               "--out", tmp / "out"), {"path": str(tmp)}


def _predict_no_such_model(cli, tiny_run, tmp):
    missing = tmp / "nonexistent"
    return cli("predict", "--model", missing, "1.0"), {"path": str(missing)}


def _predict_not_a_model(cli, tiny_run, tmp):
    folder = tmp / "not_a_model"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    return cli("predict", "--model", folder, "1.0"), {"path": str(folder)}


def _predict_no_inputs(cli, tiny_run, tmp):
    return cli("predict", "--model", tiny_run[0] / "saved_model"), {}


TF_ERRORS = {
    "missing_train_csv": (_missing_train, ["no such file"]),
    "bad_csv_row": (_bad_row, ["row 3", "'abc'", "not a number"]),
    "out_holds_another_seed": (_out_holds_another_seed, [
        "holds a run with other settings (seed 0 -> 5)", "pass another --out"]),
    "out_holds_another_task": (_out_holds_another_task, ["holds a run of another task"]),
    "out_holds_a_damaged_config": (_out_holds_a_damaged_config, [
        "is not a run's config (not valid JSON", "pass another --out"]),
    "out_holds_a_run_with_an_extra_field": (_out_holds_a_run_with_an_extra_field, [
        "holds a run with other settings (bogus 1 -> unset)"]),
    "train_csv_is_a_folder": (_train_csv_is_a_folder, ["is a folder, not a file"]),
    "predict_no_such_model": (_predict_no_such_model, [
        "--model", "no such folder; pass the saved_model/ folder of a run"]),
    "predict_not_a_model": (_predict_not_a_model, ["--model", "saved_model.pb"]),
    "predict_no_inputs": (_predict_no_inputs, ["no inputs"]),
}


# Run as a real `python run.py` process, where TensorFlow's own start-up lines
# reach the same stderr; the other cases run in this process, at a tenth of
# the cost, with their output captured.
IN_A_PROCESS = {"out_holds_another_seed", "predict_no_inputs"}


@pytest.fixture(scope="module")
def tf_error(cli, tiny_run, tmp_path_factory):
    """Runs each TensorFlow-importing error case once: `name -> (result, extra)`."""
    cache = {}

    def get(name):
        if name not in cache:
            make, _ = TF_ERRORS[name]
            run = cli if name in IN_A_PROCESS else in_this_process
            cache[name] = make(run, tiny_run, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(TF_ERRORS))
def test_data_and_model_errors_are_one_line(tf_error, name):
    result, extra = tf_error(name)
    line = assert_user_error(result, *TF_ERRORS[name][1])
    assert_single_line(result)  # TensorFlow's start-up chatter must not bury it
    if "path" in extra:
        assert extra["path"] in line
    assert line.startswith(f"run.py {'predict' if 'predict' in name else 'regression'}: error:")


def test_missing_data_creates_no_run_folder(tf_error):
    result, extra = tf_error("missing_train_csv")
    assert result.returncode == 2
    assert not extra["out"].exists()


@pytest.mark.parametrize("name", ["bad_csv_row", "out_holds_another_seed",
                                  "out_holds_another_task", "out_holds_a_damaged_config",
                                  "out_holds_a_run_with_an_extra_field"])
def test_failed_run_leaves_existing_run_untouched(tf_error, name):
    result, extra = tf_error(name)
    assert result.returncode == 2
    before, after = extra["before"], extra["after"]
    assert any(path.name == "config.json" for path in before)
    assert set(after) == set(before)
    for path, content in before.items():
        assert after[path] == content, f"{path} changed"


# --- predict -----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_serve(tiny_run):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tiny_run[0] / "saved_model"))
    return lambda xs: loaded.serve(tf.constant(np.asarray(xs, np.float32)
                                               .reshape(-1, 1))).numpy().ravel()


def test_predict_values_and_input_csv(tiny_run, tmp_path, reference_serve):
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("input,label\n1.25,0\n-2,0\n0.5,0\n")
    result = in_this_process("predict", "--model", tiny_run[0] / "saved_model", "--input",
                             inputs, "0.5", "-3")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "input,prediction"
    rows = [line.split(",") for line in lines[1:]]
    assert [row[0] for row in rows] == ["0.5", "-3", "1.25", "-2", "0.5"]
    predictions = np.array([float(row[1]) for row in rows])
    assert np.all(np.isfinite(predictions))
    expected = reference_serve([0.5, -3, 1.25, -2, 0.5])
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)
    assert rows[0][1] == rows[4][1]  # the same x, the same answer
    assert "Traceback" not in result.stderr


def test_read_inputs(tmp_path):
    from hw1_keras.predict import read_inputs

    headed = tmp_path / "headed.csv"
    headed.write_text("label,input\n9,1.5\n9,-2\n")
    assert read_inputs(headed) == [1.5, -2.0]
    plain = tmp_path / "plain.csv"
    plain.write_text("0.25\n-3\n\n7\n")
    assert read_inputs(plain) == [0.25, -3.0, 7.0]
    excel = tmp_path / "excel.csv"  # "CSV UTF-8" from Excel: a byte-order mark first.
    excel.write_bytes("input\r\n4\r\n".encode("utf-8-sig"))
    assert read_inputs(excel) == [4.0]
    named = tmp_path / "named.csv"  # Another header: its first column, as --help says.
    named.write_text("x,note\n1,a\n2,b\n")
    assert read_inputs(named) == [1.0, 2.0]


@pytest.mark.parametrize("content, fragment", [
    ("", "empty"),
    ("input\n", "no data rows"),
    ("input\n1\nabc\n", "row 3"),
    ("input\n1\ninf\n", "row 3"),
    ("input\n1\n-1e40\n", "beyond float32's range"),
    ("inf\n1\n", "row 1"),  # Not a header: a bad value.
    ("input,label\n1,2\n,3\n", "row 3"),
])
def test_read_inputs_errors(tmp_path, content, fragment):
    from hw1_keras.errors import InputError
    from hw1_keras.predict import read_inputs

    path = tmp_path / "in.csv"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        read_inputs(path)
    message = str(caught.value)
    assert message.startswith(f"--input {path}:") and fragment in message, message
    with pytest.raises(InputError, match="no such file"):
        read_inputs(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="is a folder, not a file"):
        read_inputs(tmp_path)


def test_predict_no_inputs_is_checked_first(tmp_path):
    from hw1_keras.errors import InputError
    from hw1_keras.predict import predict_command

    with pytest.raises(InputError, match="no inputs"):
        predict_command(str(tmp_path / "whatever"), [], None)


def test_predict_says_when_the_model_folder_is_missing_or_a_file(tiny_run, tmp_path):
    from hw1_keras.errors import InputError
    from hw1_keras.predict import predict_command

    model_file = tiny_run[0] / "saved_model" / "saved_model.pb"
    for path, what in [(tmp_path / "missing", "no such folder"),
                       (model_file, "is a file, not a folder")]:
        with pytest.raises(InputError) as caught:
            predict_command(str(path), ["1"], None)
        assert str(caught.value) == (f"--model {path}: {what}; pass the saved_model/ folder "
                                     "of a run (the one holding saved_model.pb)")


def test_predict_reads_every_negative_number_python_does_as_an_x_value():
    from hw1_keras.cli import build_parser

    values = ["-3", "-0.5", "-.5", "-1e-3", "-2E+2", "-5.", "-inf", "0.5"]
    args = build_parser().parse_args(["predict", "--model", "m", *values])
    assert args.inputs == values and args.model == "m"
    # A mistyped flag is still one.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--model", "m", "-x"])


class _Eager:
    """What a SavedModel endpoint returns: a tensor with `.numpy()`."""

    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


def test_predict_marks_an_answer_under_70_percent_as_unsure(tmp_path, capsys):
    # The model's probability is all the mark looks at: a stub endpoint stands in.
    from PIL import Image

    from hw1_keras import predict

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(255 - digit).save(tmp_path / "one.png")
    for top, expected in ((0.69, "3 (69.0%, unsure)"), (0.7, "3 (70.0%)")):
        def serve(images, top=top):
            probabilities = np.full((len(images), 10), (1 - top) / 9, np.float32)
            probabilities[:, 3] = top
            return _Eager(probabilities)
        assert predict._predict_images(serve, [str(tmp_path / "one.png")]) == 0
        assert capsys.readouterr().out.strip() == f"{tmp_path / 'one.png'}: {expected}"


def test_every_parser_takes_negative_values_and_lists_for_its_flags():
    from hw1_keras.cli import build_parser

    args = build_parser().parse_args(["regression", "--weight-decay", "-1e-3", "--units", "-3,4",
                                      "--lr", "-inf", "--seed", "-1"])
    assert (args.weight_decay, args.units, args.learning_rate, args.seed) == (
        -1e-3, (-3, 4), float("-inf"), -1)
    args = build_parser().parse_args(["mnist", "--rotation", "-5", "--filters", "-8"])
    assert (args.rotation, args.filters) == (-5.0, (-8,))
    with pytest.raises(SystemExit):  # A value, so its flag's own check answers.
        build_parser().parse_args(["bench", "regression", "--seeds", "-2"])


def test_error_lines_escape_what_would_break_them():
    from hw1_keras.errors import one_line

    assert one_line("a\nb\r\tc \udcff é") == "a\\nb\\r\\tc \\udcff é"
