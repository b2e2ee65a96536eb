"""The checker's verdict for people (rich tables) — `--json` prints Verdict.to_json() exactly."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from payctl.history.check import CLASSES, Verdict

# Sequences shown per anomaly class in the table; --json has them all.
SHOWN_PER_CLASS = 5


def show(verdict: Verdict, console: Console, source: str) -> None:
    outcomes = verdict.outcomes
    console.print(f"history {source}: {verdict.ops} operations (ok {outcomes['ok']}, fail {outcomes['fail']}, "
                  f"unknown {outcomes['unknown']}), {verdict.requests} requests, {verdict.payments} payments; "
                  f"unknown outcomes resolved: {verdict.unknown_applied} applied, "
                  f"{verdict.unknown_not_applied} not applied", highlight=False)
    counts = verdict.counts()
    table = Table(title="anomalies by class")
    table.add_column("class")
    table.add_column("count", justify="right")
    for name in CLASSES:
        table.add_row(name, str(counts[name]))
    console.print(table)
    for name in CLASSES:
        found = [a for a in verdict.anomalies if a.kind == name]
        for anomaly in found[:SHOWN_PER_CLASS]:
            console.print(f"[red]{name}[/red] {anomaly.message}", highlight=False)
            for op in anomaly.ops:
                console.print(f"    {op.brief()}", highlight=False, markup=False)
        if len(found) > SHOWN_PER_CLASS:
            console.print(f"    … {len(found) - SHOWN_PER_CLASS} more {name} (see --json)", highlight=False)
    verdict_text = ("[green]VALID[/green]" if verdict.valid
                    else f"[red]INVALID[/red] ({len(verdict.anomalies)} anomalies)")
    console.print(f"verdict: {verdict_text}")


def history_line(history: dict[str, Any]) -> str:
    """`valid · 1,204 operations · 0 anomalies`, or the classes that showed one, or why none was checked."""
    verdict = str(history.get("verdict"))
    if history.get("ops") is None:
        return f"{verdict} — {history.get('reason', '')}".rstrip(" —")
    anomalies = {k: int(v) for k, v in (history.get("anomalies_by_class") or {}).items() if v}
    found = ", ".join(f"{k} {v:,}" for k, v in sorted(anomalies.items())) or "0 anomalies"
    return f"{verdict} · {int(history['ops']):,} operations · {found}"
