"""Counts as they read in messages."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 column`, `3 columns`, `0 columns`; `many` where the plural is not `one` + s."""
    return f"{count} {one if count == 1 else many or one + 's'}"
