"""Markdown tables, one way for every report (load test, chaos, smoke): cells escaped so a `|` or
a newline in a value (an error message, a check name) never breaks the table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: Sequence[str] | None = None) -> list[str]:
    """Lines of a table; `align` per column: "" (default), "r" (right) or "c" (centre)."""
    marks = {"": "---", "r": "---:", "c": ":---:"}
    rule = [marks[a] for a in (align or [""] * len(headers))]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines
