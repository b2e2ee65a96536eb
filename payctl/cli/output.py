"""Rendering helpers: rich tables for people, JSON for scripts. Consoles are built on first use."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def _width() -> int | None:
    # A terminal (or $COLUMNS) says its own width; logs and CI get 100 columns, and every table
    # folds long cells instead of cutting them (see `table`).
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 100


@functools.cache
def console() -> Console:
    """The stdout console, created (and sized) on first use."""
    return Console(width=_width())


@functools.cache
def err_console() -> Console:
    """The stderr console, created (and sized) on first use."""
    return Console(stderr=True, width=_width())


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cell(value: Any) -> str:
    """A value as people read it in a table: lists and mappings as text, never a Python repr."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def duration(seconds: float | None) -> str:
    """12.3 → "12s", 754 → "12m 34s", 7384 → "2h 3m"."""
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, overflow="fold")  # a narrow page wraps a cell; it never cuts a port or an id
    for row in rows:
        t.add_row(*[cell(v) for v in row])
    return t


def ok_mark(ok: bool) -> str:
    return "[green]✔[/green]" if ok else "[red]✘[/red]"


class PlainProgress:
    """Progress for a log or a pipe (no terminal, so no live bar): one plain line on stderr at most
    every `every_s` seconds, so CI logs show a long command moving."""

    def __init__(self, enabled: bool, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.every_s = every_s
        self._clock = clock
        self._last = float("-inf")

    def show(self, line: str) -> None:
        now = self._clock()
        if self.enabled and now - self._last >= self.every_s:
            self._last = now
            err_console().print(line, highlight=False, soft_wrap=True)
