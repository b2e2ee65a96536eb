"""The chaos report's timeline: the history's operations per second by outcome, the faults and
their reverts marked in the column where they happened; the pure count behind it."""

from __future__ import annotations

from typing import Any

from payctl.chaos.report import to_markdown
from payctl.history.model import Op
from payctl.history.timeline import per_second


def _op(seq: int, at: float, outcome: str) -> Op:
    return Op(seq=seq, kind="authorize", merchant="CLIENT-0", payment=None, key=f"k{seq}", body={},
              invoke_m=at, invoke_w=at, complete_m=at + 0.01, complete_w=at + 0.01, outcome=outcome,
              status=200 if outcome == "ok" else 503, code=None, answer=None, error=None, attempt=1)


def test_operations_are_counted_per_second_from_the_start_by_outcome() -> None:
    ops = [_op(1, 100.2, "ok"), _op(2, 100.9, "ok"), _op(3, 102.5, "fail"), _op(4, 99.0, "unknown")]
    assert per_second(ops, 100.0) == [[2, 0, 1], [0, 0, 0], [0, 1, 0]]


def _journal(seconds: list[list[int]]) -> dict[str, Any]:
    start = 1000.0
    method = [{"type": "background_load", "label": "load", "status": "succeeded", "start": start, "end": start + 1},
              {"type": "stop", "label": "stop shard2", "status": "succeeded", "start": start + 10, "end": start + 11},
              {"type": "start", "label": "start shard2", "status": "succeeded", "start": start + 20,
               "end": start + 21}]
    return {"experiment": {"title": "t", "variables": {}}, "status": "completed", "start": start, "duration_s": 30,
            "method": method, "breaker_transitions": {},
            "history": {"verdict": "valid", "ops": 3, "anomalies_by_class": {},
                        "timeline": {"start": start, "per_second": seconds}}}


def test_the_report_draws_the_outcomes_and_marks_each_fault_where_it_happened() -> None:
    seconds = [[10, 0, 0]] * 10 + [[5, 5, 0]] * 10 + [[10, 0, 0]] * 10
    text = to_markdown(_journal(seconds))
    rows = {line.split()[0]: line.split()[1] for line in text.splitlines()
            if line.split() and line.split()[0] in ("ok", "fail", "unknown", "faults")}
    assert len(rows["ok"]) == len(rows["faults"]) == 30  # one column per second for a 30 s run
    assert rows["faults"].index("a") == 10 and rows["faults"].index("b") == 20
    assert rows["fail"][:10] == "▁" * 10 and rows["fail"][10] == "█"
    assert "a: +10 s stop shard2" in text and "b: +20 s start shard2" in text


def test_a_long_run_is_bucketed_to_sixty_columns() -> None:
    text = to_markdown(_journal([[1, 0, 0]] * 600))
    faults = next(line for line in text.splitlines() if line.startswith("faults"))
    assert len(faults.split()[1]) == 60 and "one column = 10 s" in text
