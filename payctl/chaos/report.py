"""Journal → Markdown report and the final terminal table."""

from __future__ import annotations

import json
import time
from typing import Any

from payctl.chaos.kinds import UNDO_TYPE
from payctl.loadtest.render import sparkline
from payctl.markdown import table

# What the timeline marks: each fault, what reverts it, and the one-shot injections.
MARKED = frozenset(UNDO_TYPE) | frozenset(UNDO_TYPE.values()) | {"inject_poison", "lose_logs"}
PHASES = ("steady_state_before", "method", "steady_state_after", "verify", "rollbacks",
          "steady_state_after_rollbacks")


def _clock(ts: float | None) -> str:
    return "—" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rows(journal: dict[str, Any]) -> list[list[str]]:
    out = []
    for phase in PHASES:
        for rec in journal.get(phase, []):
            took = (rec["end"] - rec["start"]) if rec.get("end") else None
            out.append([phase, rec["label"], rec["status"], "—" if took is None else f"{took:.2f}s",
                        _short(rec.get("error") or rec.get("output"))])
    return out


def to_markdown(journal: dict[str, Any]) -> str:
    exp = journal["experiment"]
    lines = [f"# Chaos: {exp['title']}", "",
             f"**Result: {journal['status'].upper()}**" + (f" — {journal['reason']}" if journal.get("reason") else ""),
             "", f"- started {_clock(journal['start'])}, took {journal['duration_s']:.1f}s",
             f"- variables: `{json.dumps(exp['variables'])}`", "", "## Activities", ""]
    lines += table(["phase", "activity", "status", "took", "output"], rows(journal))
    lines += ["", "## Breaker transitions observed", ""]
    for relay, transitions in journal.get("breaker_transitions", {}).items():
        seq = " → ".join(f"{t.get('to', '?')} @{_clock(t.get('at'))}" for t in transitions) or "none"
        lines.append(f"- **{relay}**: {seq}")
    history = journal.get("history")
    if history:
        lines += ["", "## Client-side history", "", f"- verdict: **{history.get('verdict')}**"
                  + (f" — {history['reason']}" if history.get("reason") else "")]
        if history.get("anomalies_by_class"):
            lines.append(f"- operations: {history.get('ops')}; unknown outcomes resolved: "
                         f"`{json.dumps(history.get('unknown_resolved'))}`")
            lines.append(f"- anomalies by class: `{json.dumps(history['anomalies_by_class'])}`")
            lines += [f"- {m}" for m in history.get("first", [])]
        lines += timeline_lines(journal)
    lines.append("")
    return "\n".join(lines)


# Wide enough to see a fault's seconds, narrow enough for a terminal.
TIMELINE_WIDTH = 60
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def timeline_lines(journal: dict[str, Any]) -> list[str]:
    """The history's operations per second (ok / fail / unknown as the clients saw them) as
    sparklines, with the faults and their reverts marked where they happened."""
    timeline = (journal.get("history") or {}).get("timeline")
    if not timeline or not timeline.get("per_second"):
        return []
    seconds: list[list[int]] = timeline["per_second"]
    start = float(timeline["start"])
    size = -(-len(seconds) // TIMELINE_WIDTH)  # seconds per column, as sparkline() buckets them
    columns = -(-len(seconds) // size)
    marks = [rec for rec in journal.get("method", []) if rec.get("type") in MARKED]
    row = ["·"] * columns
    legend = []
    for letter, rec in zip(LETTERS, marks, strict=False):
        offset = max(0.0, float(rec["start"]) - start)
        column = min(columns - 1, int(offset) // size)
        row[column] = letter
        legend.append(f"{letter}: +{offset:.0f} s {rec['label']}")
    out = ["", f"Operations launched per second (one column = {size} s; the tallest block is the busiest):",
           "", "```text"]
    for i, name in enumerate(("ok", "fail", "unknown")):
        out.append(f"{name:<8} {sparkline([float(s[i]) for s in seconds], width=TIMELINE_WIDTH)}")
    out += [f"{'faults':<8} {''.join(row)}", "```", ""]
    out += [f"- {line}" for line in legend] or ["- no fault in the method"]
    return out
