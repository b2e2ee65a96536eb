"""Rendering helpers: rich tables for people, JSON for scripts. Consoles are built on first use."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Sequence
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
