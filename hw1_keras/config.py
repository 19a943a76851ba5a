"""Typed run configurations shared by every task.

Each task describes its configuration as one frozen dataclass whose fields are
declared with `option(default, why)`. The "why" is the comment that explains
the default; the CLI reuses it as the flag's help text, so the two never drift.

The CLI only *overrides* fields (`--batch-size 100` sets `batch_size`), and the
dataclass validates itself in `__post_init__`, so a bad value is rejected the
same way from the command line and from Python.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import types
import typing
from typing import Any

from hw1_keras.errors import InputError


def option(default: Any, why: str, *, flag: str | None = None) -> Any:
    """Declares a configuration field with its reason and optional short flag.

    Args:
        default: The default value (immutable: numbers, strings, tuples, None).
        why: Why this default; shown as the flag's `--help` text.
        flag: A CLI flag to use instead of the one derived from the field name
            (for example `--lr` for `learning_rate`).

    Returns:
        A `dataclasses.field` carrying the help text and flag as metadata.
    """
    return dataclasses.field(default=default, metadata={"help": why, "flag": flag})


def flag_name(field: dataclasses.Field) -> str:
    """The CLI flag of a configuration field: `batch_size` -> `--batch-size`."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _scalar_parser(kind: Any):
    """An argparse `type=` callable for a scalar annotation (int, float, str)."""
    names = {int: "an integer", float: "a number", str: "a string"}

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected {names[kind]}") from None

    return parse


def _parser_for(annotation: Any):
    """Maps a field annotation to an argparse `type=` callable.

    Supports `int`, `float`, `str`, `X | None` and `tuple[X, ...]` (given on the
    command line as a comma-separated list, e.g. `16,64`).
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _parser_for(inner)
    if origin is tuple:
        item = _scalar_parser(typing.get_args(annotation)[0])

        def parse_list(text: str):
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if not parts:
                raise argparse.ArgumentTypeError(
                    f"got {text!r}; expected a comma-separated list"
                )
            return tuple(item(p) for p in parts)

        return parse_list
    return _scalar_parser(annotation)


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Adds one `--flag` per field of `config_class`, defaulting to "not given".

    Args:
        parser: The (sub)parser to extend.
        config_class: A configuration dataclass built with `option()`.
    """
    hints = typing.get_type_hints(config_class)
    group = parser.add_argument_group(f"configuration ({config_class.__name__})")
    for field in dataclasses.fields(config_class):
        flag = flag_name(field)
        group.add_argument(
            flag,
            dest=field.name,
            type=_parser_for(hints[field.name]),
            default=argparse.SUPPRESS,  # Only fields the user names override.
            metavar=field.name.upper(),
            help=field.metadata["help"]
            + ("" if field.default is None else f" (default: {_show(field.default)})"),
        )


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def config_from_args(config_class: type, args: argparse.Namespace, base: Any = None):
    """Builds a configuration from the fields the user named on the CLI.

    Args:
        config_class: The configuration dataclass.
        args: Parsed arguments from a parser extended by `add_config_arguments`.
        base: A preset to override instead of the class defaults.
    """
    names = {f.name for f in dataclasses.fields(config_class)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return dataclasses.replace(base, **given) if base is not None else config_class(**given)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a configuration (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(config).items()
    }


# Seeds reach NumPy and TensorFlow (0 to 2**32 - 1) with small offsets added
# (augmentation layers, folds), so they are kept well inside that range.
MAX_SEED = 2**31 - 1
# Counts (epochs, batch sizes, widths) above this are typos, not runs, and
# TensorFlow's integer tensors cannot take much larger ones: `--epochs` of
# 10**20 failed deep inside tf.data with a traceback.
MAX_COUNT = 2**31 - 1
# The largest network a run builds. Training holds about five float32 copies
# of the weights (the weights, their gradients, Adam's two moments, a weight
# average) and the checkpoints and exports serialize more: at 100 million
# parameters, 400 MB a copy, about 2-4 GB in all, and a 5-fold search's
# stacked copies five times that, which fits this project's 24 GiB machines
# with room for TensorFlow, the data and the other processes sharing them.
# Every export then also stays below protobuf's 2 GiB limit (the ONNX file).
MAX_PARAMETERS = 100_000_000
# The most activation values one batch may hold (input to logits, every
# layer's output). A network of few weights can still need more memory than a
# machine has: MNIST's first layer alone, at 100,000 filters and batch 128,
# outputs 10**10 values (40 GB). At this limit a batch's values take 4 GB,
# and training keeps them and their gradients: about 8-12 GB.
MAX_BATCH_ACTIVATIONS = 1_000_000_000


def require_seed(config: Any, name: str = "seed") -> None:
    """Raises `InputError` unless the field `name` is a seed in [0, MAX_SEED]."""
    value = getattr(config, name)
    require(0 <= value <= MAX_SEED, config, name, f"a whole number from 0 to {MAX_SEED}")


def require_count(config: Any, name: str, minimum: int = 1) -> None:
    """Raises `InputError` unless the field `name` is a whole number in [minimum, MAX_COUNT]."""
    value = getattr(config, name)
    require(minimum <= value <= MAX_COUNT, config, name,
            f"a whole number from {minimum} to {MAX_COUNT:,}")


def network_fits(parameters: int, activations: int, batch: int) -> str | None:
    """Why a network is too large to build, or None when it fits (pure).

    Args:
        parameters: Its parameter count.
        activations: The activation values one sample gives (every layer's output).
        batch: The most samples it processes at once.
    """
    if parameters > MAX_PARAMETERS:
        return (f"the network would have {parameters:,} parameters; the limit is "
                f"{MAX_PARAMETERS:,}, about what memory allows for training and exporting it")
    if activations * batch > MAX_BATCH_ACTIVATIONS:
        return (f"one batch of {batch:,} samples would hold {activations * batch:,} "
                f"activation values ({activations:,} a sample); the limit is "
                f"{MAX_BATCH_ACTIVATIONS:,}, about what memory allows for training on it")
    return None


def require_network_fits(config: Any, names: tuple[str, ...], parameters: int,
                         activations: int, batch: int, fix: str) -> None:
    """Raises `InputError` naming the flags `names` when the network is too large.

    Args:
        config: The configuration.
        names: The fields that size the network, shown with their values.
        parameters, activations, batch: As `network_fits` takes them.
        fix: How to make it smaller, e.g. "use fewer or narrower layers".
    """
    why = network_fits(parameters, activations, batch)
    if why is None:
        return
    fields = {f.name: f for f in dataclasses.fields(config)}
    given = " ".join(f"{flag_name(fields[name])} {_show(getattr(config, name))}"
                     for name in names)
    raise InputError(f"{given}: {why}; {fix}")


def absolute_path(config: Any, name: str) -> None:
    """Makes the file path in field `name` absolute, in place; None stays None.

    A run folder's `config.json` and a search's identity record the path, and
    a rerun from another directory names the same file by another relative
    path (the README's examples use relative ones); absolute paths let the two
    compare equal. For a frozen dataclass's `__post_init__`.

    Raises:
        InputError: The path is empty (a `--data ""` would name the current
            folder).
    """
    value = getattr(config, name)
    if value is None:
        return
    value = os.fspath(value)
    if not value.strip():
        field = {f.name: f for f in dataclasses.fields(config)}[name]
        raise InputError(f"{flag_name(field)} got an empty path; expected a file's path, "
                         "or leave the flag out")
    object.__setattr__(config, name, os.path.abspath(value))


# What `require_regular_file` calls each kind of file that is no data file.
SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def require_regular_file(path: str | os.PathLike, name: str, expected: str) -> None:
    """Raises `InputError` when `path` exists but is neither a regular file nor a folder.

    A FIFO, a device (/dev/null) or a socket exists, but is no data file:
    reading a FIFO waits for a writer forever, a device reads as empty or
    endless. A path that cannot even be looked up (a name too long, a loop of
    symbolic links) is refused too. Missing paths and folders are left to
    the callers, whose messages say what they expected there.

    Args:
        path: The path given.
        name: How the message names it, e.g. `--data x.npz`.
        expected: What to pass instead, e.g. "a CSV file with columns input,label".
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # Or a NUL in the name.
        return
    except OSError as error:  # A name too long, a loop of links, no permission.
        raise InputError(f"{name}: cannot be read ({error.strerror}); pass {expected}") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((kind for test, kind in SPECIAL_FILES if test(mode)), "a special file")
    raise InputError(f"{name}: is not a regular file ({kind}); pass {expected}")


def require(condition: bool, config: Any, name: str, expected: str) -> None:
    """Raises `InputError` naming the flag, its value and what was expected."""
    if condition:
        return
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    value = getattr(config, name)
    raise InputError(
        f"{flag_name(field)} got {_show(value)}; expected {expected}"
    )
