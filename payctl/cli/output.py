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
    # Without a terminal rich assumes 80 columns and truncates tables; logs and CI get a wider page.
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160


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


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
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
