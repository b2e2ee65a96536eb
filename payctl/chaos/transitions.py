"""The breaker must go OPEN → (HALF_OPEN → OPEN)* → HALF_OPEN → CLOSED around an outage (pure)."""

from __future__ import annotations

from typing import Any


def check_outage_transitions(transitions: list[dict[str, Any]], down_at: float, up_at: float) -> list[str]:
    """Problems with one relay's transitions (empty list = the pattern held).

    `transitions` are {from, to, at} observed from the outage start onwards."""
    problems: list[str] = []
    seq = sorted((t for t in transitions if t["at"] >= down_at - 0.001), key=lambda t: t["at"])
    if not seq:
        return ["no breaker transition observed: the breaker never opened"]
    first = seq[0]
    if (first["from"], first["to"]) != ("CLOSED", "OPEN"):
        problems.append(f"first transition was {first['from']}→{first['to']}, expected CLOSED→OPEN")
    allowed = {("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN"), ("HALF_OPEN", "CLOSED"), ("CLOSED", "OPEN")}
    for t in seq:
        if (t["from"], t["to"]) not in allowed:
            problems.append(f"unexpected transition {t['from']}→{t['to']}")
        if t["to"] == "CLOSED" and t["at"] < up_at:
            problems.append(f"reached CLOSED at {t['at']:.3f} before the broker was back at {up_at:.3f}")
    last = seq[-1]
    if (last["from"], last["to"]) != ("HALF_OPEN", "CLOSED"):
        problems.append(f"last transition was {last['from']}→{last['to']}, expected HALF_OPEN→CLOSED")
    elif last["at"] < up_at:
        problems.append("closed before the broker returned")
    return problems
