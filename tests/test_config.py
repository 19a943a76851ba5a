"""Configuration dataclasses: CLI flags derived from fields, overrides, validation."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from hw1_keras.config import add_config_arguments, config_from_args, flag_name, to_dict
from hw1_keras.errors import InputError
from hw1_keras.regression.config import RegressionConfig

EXPECTED_FLAGS = {
    "seed": "--seed",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "learning_rate": "--lr",
    "weight_decay": "--weight-decay",
    "units": "--units",
    "activations": "--activations",
    "log_every": "--log-every",
    "ensemble": "--ensemble",
    "data_seed": "--data-seed",
    "train": "--train",
    "test": "--test",
}


class RaisingParser(argparse.ArgumentParser):
    """Turns argparse's exit into an exception the test can inspect."""

    def error(self, message):
        raise AssertionError(f"argparse error: {message}")


def make_parser() -> argparse.ArgumentParser:
    parser = RaisingParser(prog="test")
    add_config_arguments(parser, RegressionConfig)
    return parser


def parse(*argv: str) -> RegressionConfig:
    return config_from_args(RegressionConfig, make_parser().parse_args(list(argv)))


def test_flag_names_follow_fields_and_explicit_flags():
    names = {f.name: flag_name(f) for f in dataclasses.fields(RegressionConfig)}
    assert names == EXPECTED_FLAGS


def test_parser_has_one_flag_per_field_with_help_and_default():
    parser = make_parser()
    actions = {a.dest: a for a in parser._actions if a.dest in EXPECTED_FLAGS}
    assert set(actions) == set(EXPECTED_FLAGS)
    for dest, action in actions.items():
        assert action.option_strings == [EXPECTED_FLAGS[dest]]
        field = {f.name: f for f in dataclasses.fields(RegressionConfig)}[dest]
        # The help text is the field's "why", plus the default when there is one.
        assert action.help.startswith(field.metadata["help"])
    assert "(default: 16,64)" in actions["units"].help
    assert "(default: selu,sigmoid)" in actions["activations"].help
    assert actions["train"].help == {f.name: f for f in dataclasses.fields(RegressionConfig)}[
        "train"].metadata["help"]  # a None default is not shown as "(default: None)"


def test_no_flags_gives_the_defaults():
    assert parse() == RegressionConfig()
    defaults = RegressionConfig()
    assert defaults.units == (16, 64)
    assert defaults.activations == ("selu", "sigmoid")
    assert defaults.batch_size == 50 and defaults.learning_rate == 4e-4


def test_flags_override_only_named_fields():
    config = parse("--units", "8, 32,4", "--activations", "relu,tanh,gelu", "--lr", "1e-3",
                   "--batch-size", "10", "--weight-decay", "0", "--seed", "7")
    assert config.units == (8, 32, 4)
    assert config.activations == ("relu", "tanh", "gelu")
    assert config.learning_rate == pytest.approx(1e-3)
    assert isinstance(config.learning_rate, float)
    assert config.batch_size == 10 and isinstance(config.batch_size, int)
    assert config.weight_decay == 0.0
    assert config.seed == 7
    # Untouched fields keep their defaults.
    assert config.epochs == RegressionConfig().epochs
    assert config.log_every == RegressionConfig().log_every
    assert config.train is None and config.test is None


def test_train_and_test_paths_parse_as_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse("--train", "a.csv", "--test", "b.csv")
    assert (config.train, config.test) == (str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))


def test_a_file_named_from_another_folder_is_recorded_as_the_same_file(tmp_path, monkeypatch):
    from hw1_keras.mnist.config import MnistConfig
    from hw1_keras.rerun import check_run_dir
    from hw1_keras.runs import write_json
    from tuning.mnist_settings import StudySettings

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    first = MnistConfig(data="data/mnist.npz")
    regression = RegressionConfig(train="data/a.csv", test=str(tmp_path / "data" / "b.csv"))
    monkeypatch.chdir(tmp_path / "data")
    again = dataclasses.replace(MnistConfig(), data="mnist.npz")
    assert first.data == again.data == str(tmp_path / "data" / "mnist.npz")
    assert RegressionConfig(train="a.csv", test="../data/b.csv") == regression
    # A resumed run and a resumed search see the same settings.
    (tmp_path / "run").mkdir()
    write_json(tmp_path / "run" / "config.json", to_dict(first))
    check_run_dir(tmp_path / "run", to_dict(again))
    assert StudySettings().identity(first) == StudySettings().identity(again)


@pytest.mark.parametrize("field", ["data", "train", "test"])
def test_an_empty_file_path_is_refused_not_taken_for_the_current_folder(field):
    from hw1_keras.mnist.config import MnistConfig

    with pytest.raises(InputError) as caught:
        if field == "data":
            MnistConfig(data="")
        else:
            RegressionConfig(**{"train": "a.csv", "test": "b.csv", field: ""})
    assert str(caught.value) == (f"--{field} got an empty path; expected a file's path, or "
                                 "leave the flag out")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--epochs", "abc"], "expected an integer"),
        (["--lr", "fast"], "expected a number"),
        (["--units", "16,x"], "expected an integer"),
        (["--units", ","], "comma-separated list"),
    ],
)
def test_unparsable_values_are_argparse_errors(argv, fragment):
    with pytest.raises(AssertionError, match=fragment):
        make_parser().parse_args(argv)


INVALID = [
    (dict(learning_rate=-1e-3), "--lr"),
    (dict(learning_rate=0.0), "--lr"),
    (dict(learning_rate=float("nan")), "--lr"),
    (dict(batch_size=0), "--batch-size"),
    (dict(epochs=0), "--epochs"),
    (dict(epochs=-5), "--epochs"),
    (dict(weight_decay=-0.1), "--weight-decay"),
    (dict(log_every=0), "--log-every"),
    (dict(units=()), "--units"),
    (dict(units=(16, 0), activations=("selu", "selu")), "--units"),
    (dict(units=(16, 64, 8)), "--activations"),  # three layers, two activations
    (dict(activations=("selu",)), "--activations"),
    (dict(activations=("selu", "swishy")), "--activations"),
    (dict(train="a.csv"), "--train"),
    (dict(test="b.csv"), "--test"),
    (dict(seed=-1), "--seed"),
    (dict(seed=5_000_000_000), "--seed"),  # Beyond what NumPy and TensorFlow take.
    (dict(data_seed=-1), "--data-seed"),
]


@pytest.mark.parametrize("overrides, flag", INVALID, ids=[f"{f}:{o}" for o, f in INVALID])
def test_invalid_values_raise_input_error_naming_the_flag(overrides, flag):
    with pytest.raises(InputError) as caught:
        RegressionConfig(**overrides)
    message = str(caught.value)
    assert message.startswith(flag + " got "), message
    assert "expected" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--lr", "-0.001"], "--lr"),
        (["--batch-size", "0"], "--batch-size"),
        (["--epochs", "0"], "--epochs"),
        (["--units", "16,64,8"], "--activations"),
        (["--activations", "selu,swishy"], "--activations"),
        (["--train", "a.csv"], "--train"),
    ],
)
def test_invalid_flag_values_are_rejected_through_the_cli_path(argv, flag):
    with pytest.raises(InputError, match="^" + flag):
        parse(*argv)


@pytest.mark.parametrize("overrides, flag", [(dict(learning_rate=float("inf")), "--lr"),
                                             (dict(weight_decay=float("inf")), "--weight-decay")])
def test_infinite_rates_are_rejected(overrides, flag):
    with pytest.raises(InputError, match="^" + flag):
        RegressionConfig(**overrides)


def test_mnist_seeds_are_range_checked_too():
    from hw1_keras.mnist.config import MnistConfig

    with pytest.raises(InputError, match="^--seed got -1; expected a whole number from 0 to"):
        MnistConfig(seed=-1)


def test_error_messages_say_what_was_given_and_expected():
    with pytest.raises(InputError) as caught:
        RegressionConfig(activations=("selu", "swishy"))
    assert "selu,swishy" in str(caught.value)
    assert "sigmoid" in str(caught.value)  # lists the valid names
    with pytest.raises(InputError) as caught:
        RegressionConfig(units=(16, 64, 8))
    assert "(3)" in str(caught.value)  # how many activations are needed


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RegressionConfig().epochs = 3


def test_to_dict_is_json_ready_and_round_trips():
    config = RegressionConfig(units=(8, 8), activations=("tanh", "relu"), train="a", test="b")
    data = to_dict(config)
    assert data["units"] == [8, 8] and data["activations"] == ["tanh", "relu"]
    restored = json.loads(json.dumps(data))
    rebuilt = RegressionConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in restored.items()})
    assert rebuilt == config


# --- sizes, counts and files checked before anything is built or read --------------


def test_counts_past_what_tensorflow_takes_are_refused():
    from hw1_keras.config import MAX_COUNT

    RegressionConfig(epochs=MAX_COUNT)
    for field in ("epochs", "batch_size", "log_every"):
        with pytest.raises(InputError, match=f"got {MAX_COUNT + 1}; expected a whole number "
                                             "from 1 to 2,147,483,647"):
            RegressionConfig(**{field: MAX_COUNT + 1})


@pytest.mark.parametrize("units", [(16, 64), (3,), (5, 7, 9)])
def test_the_regression_parameter_count_is_keras_own(units):
    from hw1_keras.regression import model
    from hw1_keras.regression.config import parameter_count

    config = RegressionConfig(units=units, activations=("selu",) * len(units))
    assert parameter_count(units) == model.build_model(model.hyperparameters(config)).count_params()


@pytest.mark.parametrize("fields", [
    {}, {"filters": (32, 64, 128)},
    {"filters": (7,), "downsampling": "stride", "batch_norm": 0, "dense_units": 33,
     "dense_batch_norm": 1},
    {"filters": (5, 6, 7), "downsampling": "stride"}, {"filters": (9, 10, 11), "batch_norm": 0},
], ids=["default", "three_blocks", "stride_dense_bn", "stride_three", "no_bn"])
def test_the_mnist_parameter_count_is_keras_own(fields):
    from hw1_keras.mnist import model
    from hw1_keras.mnist.config import MnistConfig, network_size

    config = MnistConfig(**fields)
    keras_count = model.build_model(model.hyperparameters(config)).count_params()
    assert network_size(config)[0] == keras_count
    if not fields:
        assert keras_count == 3_241_642  # The README's 3.2M.


def test_networks_too_large_are_refused_with_their_size_and_the_limit():
    from hw1_keras.config import MAX_BATCH_ACTIVATIONS, MAX_PARAMETERS, network_fits
    from hw1_keras.mnist.config import MnistConfig

    assert network_fits(MAX_PARAMETERS, 1, 1) is None
    assert "the network would have 100,000,001 parameters; the limit is 100,000,000" in \
        network_fits(MAX_PARAMETERS + 1, 1, 1)
    assert network_fits(1, MAX_BATCH_ACTIVATIONS // 4, 4) is None
    assert "one batch of 4 samples would hold" in network_fits(1, MAX_BATCH_ACTIVATIONS // 4 + 1, 4)
    with pytest.raises(InputError, match="^--units 99999999999: the network would have "
                                         "299,999,999,998 parameters"):
        RegressionConfig(units=(99999999999,))
    with pytest.raises(InputError, match="^--filters 32,64 --dense-units 99999: the network"):
        MnistConfig(dense_units=99_999)
    MnistConfig(filters=(32, 64, 128), batch_size=1024)  # Large, and within both limits.


def test_only_regular_files_and_folders_pass_for_data(tmp_path):
    import os
    import socket

    from hw1_keras.config import require_regular_file

    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    for fine in ("file", "missing", "."):  # Missing files and folders: the callers' messages.
        require_regular_file(tmp_path / fine, "--data X", "a file")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "socket"))
        for path, kind in ((tmp_path / "fifo", "a FIFO"), ("/dev/null", "a character device"),
                           (tmp_path / "socket", "a socket")):
            with pytest.raises(InputError) as caught:
                require_regular_file(path, "--data X", "a .npz")
            assert str(caught.value) == f"--data X: is not a regular file ({kind}); pass a .npz"


def test_the_batches_the_size_limits_assume_are_the_ones_the_code_uses():
    import inspect

    from hw1_keras.mnist import pipeline
    from hw1_keras.mnist.config import EVALUATION_BATCH
    from hw1_keras.regression import model
    from hw1_keras.regression.config import LARGEST_BATCH

    assert LARGEST_BATCH == model.VALIDATION_BATCH
    default = inspect.signature(pipeline.evaluation_dataset).parameters["batch_size"].default
    assert EVALUATION_BATCH == default
