"""The README's commands: each one parses as written, and each file it reads is made above it."""

import re
import shlex
from pathlib import Path

import pytest

from hw1_keras.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def commands() -> list[str]:
    """Every `python run.py ...` line of the README's bash blocks, comments cut."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python run.py ")]


def test_the_readme_shows_every_subcommand():
    shown = {shlex.split(command)[2] for command in commands()}
    assert shown == {"regression", "mnist", "predict", "bench"}


@pytest.mark.parametrize("command", commands())
def test_a_readme_command_parses_as_written(command):
    build_parser().parse_args(shlex.split(command)[2:])  # argparse exits on a bad one.


def test_every_run_folder_a_readme_command_reads_is_made_by_one_above_it():
    made, read = set(), []
    for command in commands():
        words = shlex.split(command)
        if "--out" in words:
            made.add(words[words.index("--out") + 1])
        if "--model" in words:
            read.append((words[words.index("--model") + 1], set(made)))
    assert read
    for model, before in read:
        assert str(Path(model).parent) in before, model
