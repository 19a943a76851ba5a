"""The project's layers, checked from its source: what may import what.

* The library (`hw1_keras`, `tuning`) never imports `benchmarks`, which sits
  above it (`bench` loads one by its entry-point name, `cli.BENCHMARKS`).
* `hw1_keras.photos` imports neither Keras nor TensorFlow.
* Only `hw1_keras.compat` reaches into Keras' and KerasTuner's private
  modules (`keras.src`, `keras_tuner.src`).
* No two of the project's modules import each other, directly or through
  others, not even with an import inside a function.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hw1_keras", "tuning", "benchmarks")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether `name` is one of the project's modules or packages."""
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from package import module` imports that module; the package's
            # own __init__ is what it is, checked as a module of its own.
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if _is_module(submodule) else node.module)
    return names


MODULES = {_module_name(path): _imports(path)
           for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_library_never_imports_the_benchmarks():
    offenders = {module: sorted(name for name in names if _within(name, "benchmarks"))
                 for module, names in MODULES.items()
                 if not _within(module, "benchmarks")}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_every_benchmark_the_cli_names_exists():
    from hw1_keras.cli import BENCHMARKS

    for entry in BENCHMARKS.values():
        module, function = entry.split(":")
        assert callable(getattr(importlib.import_module(module), function)), entry


@pytest.mark.integration
def test_photo_reading_imports_no_keras_or_tensorflow():
    offenders = {module: sorted(name for name in names
                                if any(_within(name, heavy) for heavy in ("keras", "tensorflow")))
                 for module, names in MODULES.items() if _within(module, "hw1_keras.photos")}
    assert {module: names for module, names in offenders.items() if names} == {}
    # And nothing it imports brings them in.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, hw1_keras.photos; "
         "print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow'}))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_only_the_compat_module_touches_private_keras_modules():
    private = ("keras.src", "keras_tuner.src")
    offenders = {module: sorted(name for name in names
                                if any(_within(name, p) for p in private))
                 for module, names in MODULES.items() if module != "hw1_keras.compat"}
    assert {module: names for module, names in offenders.items() if names} == {}


def _project_edges() -> dict[str, set[str]]:
    edges = {}
    for module, names in MODULES.items():
        targets = {name for name in names if name in MODULES and name != module}
        edges[module] = targets
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_among_the_projects_modules():
    cycle = _cycle(_project_edges())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_a_cycle_when_there_is_one(edges, expected):
    assert _cycle(edges) == expected
