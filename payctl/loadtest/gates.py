"""Every threshold, check and payctl gate of a report as one pass/fail case (pure).

JUnit and the step summary render these. A case fails exactly when it is a reason the verdict
failed, so a passing run has no failed case and the exit code agrees with the JUnit file:

- a threshold fails when k6 says it was crossed;
- a check fails when it had failures and a `checks` threshold was crossed (k6's rule: checks gate
  a run only through a threshold); failures that did not gate are kept as a note;
- the grade gate fails below the minimum grade; the dropped-share and achieved-rate gates fail
  when they capped the grade and the cap put it below the minimum (otherwise a note);
- a regression gate fails past `--max-regression`; a history gate fails on consecutive runs
  outside the MAD band (one run outside is a note: a warning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payctl.loadtest.grade import MAX_DROPPED_SHARE, MIN_ACHIEVED_SHARE
from payctl.loadtest.report import LoadReport
from payctl.loadtest.thresholds import parse_expression


@dataclass(frozen=True)
class GateCase:
    kind: str  # threshold | check | gate
    name: str
    ok: bool
    message: str = ""  # why it failed: names the threshold/gate, the observed value and the limit
    note: str = ""  # what a passing case wants the reader to know (a warning)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def threshold_cases(r: LoadReport) -> list[GateCase]:
    out = []
    for t in r.thresholds:
        name = f"{t.metric}: {t.expression}"
        parsed = parse_expression(t.expression)
        stat = parsed[0] if parsed else "value"
        limit = f"{parsed[1]} {_num(parsed[2])}" if parsed else t.expression
        msg = "" if t.ok else (f"threshold {t.metric} '{t.expression}' crossed: observed {stat} "
                               f"{_num(t.observed)}, limit {limit}")
        out.append(GateCase("threshold", name, t.ok, msg))
    return out


def check_cases(r: LoadReport) -> list[GateCase]:
    crossed = [t for t in r.thresholds if not t.ok and t.metric.split("{")[0] == "checks"]
    gate = "; ".join(f"threshold checks '{t.expression}' crossed (observed {_num(t.observed)})" for t in crossed)
    out = []
    for c in r.checks:
        total = c.passes + c.fails
        share = c.fails / total if total else 0.0
        observed = f"check '{c.name}' failed {c.fails} of {total} ({share:.2%}); limit 0 failures"
        if c.ok:
            out.append(GateCase("check", c.name, True))
        elif crossed:
            out.append(GateCase("check", c.name, False, f"{observed}; {gate}"))
        else:
            out.append(GateCase("check", c.name, True,
                                note=f"{observed}; not gating: no checks threshold was crossed"))
    return out


def _capped_below_minimum(r: LoadReport) -> bool:
    return r.grade.capped and r.grade.grade < r.verdict.min_grade


def grade_cases(r: LoadReport) -> list[GateCase]:
    g, minimum = r.grade.grade, r.verdict.min_grade
    ok = g >= minimum
    cases = [GateCase("gate", "grade", ok, "" if ok else
                      f"gate grade: observed {g.name}, limit at least {minimum.name} ({r.grade.reason})")]
    share = r.dropped_share
    limit = f"at most {MAX_DROPPED_SHARE:.0%}"
    if share is None:
        cases.append(GateCase("gate", "dropped share", True, note="the input holds no dropped-iteration count"))
    elif share <= MAX_DROPPED_SHARE:
        cases.append(GateCase("gate", "dropped share", True))
    else:
        text = f"gate dropped share: observed {_pct(share)} of iterations dropped, limit {limit}"
        cases.append(GateCase("gate", "dropped share", False, text + " (capped the grade below the minimum)")
                     if _capped_below_minimum(r) else GateCase("gate", "dropped share", True, note=text))
    target, achieved = r.target_rate, r.achieved_rate
    if not target or achieved is None:
        cases.append(GateCase("gate", "achieved rate", True, note="no target or achieved rate in the input"))
    elif achieved >= MIN_ACHIEVED_SHARE * target:
        cases.append(GateCase("gate", "achieved rate", True))
    else:
        text = (f"gate achieved rate: observed {achieved:.1f}/s, limit at least {MIN_ACHIEVED_SHARE * target:.1f}/s "
                f"({MIN_ACHIEVED_SHARE:.0%} of target {target:.1f}/s)")
        cases.append(GateCase("gate", "achieved rate", False, text + " (capped the grade below the minimum)")
                     if _capped_below_minimum(r) else GateCase("gate", "achieved rate", True, note=text))
    return cases


def regression_cases(r: LoadReport) -> list[GateCase]:
    out = []
    for d in r.comparison or []:
        if d.limit is None and not d.regression:
            continue  # not gated (avg) or a statistic is missing
        name = f"regression {d.metric}"
        if not d.regression:
            out.append(GateCase("gate", name, True))
            continue
        side = "at least" if d.higher_is_better else "at most"
        change = "" if d.change_pct is None else f", {d.change_pct:+.1f}%"
        out.append(GateCase("gate", name, False,
                            f"gate regression {d.metric}: observed {_num(d.current, 4)}, limit {side} "
                            f"{_num(d.limit, 4)} (baseline {_num(d.baseline, 4)}{change})"))
    return out


def history_cases(r: LoadReport) -> list[GateCase]:
    h = r.history
    if not h:
        return []
    out = []
    for m in h.metrics:
        name = f"history {m.metric}"
        b = m.band
        if b is None:
            out.append(GateCase("gate", name, True, note=f"fewer than {h.min_runs} earlier runs with a value"))
            continue
        side = "at least" if m.higher_is_better else "at most"
        text = (f"gate history {m.metric}: observed {_num(m.current, 4)}, limit {side} "
                f"{_num(b.low if m.higher_is_better else b.high, 4)} (median {_num(b.median, 4)} "
                f"± {h.k:g}·MAD over {b.runs} runs); outside on {m.outside_runs} run(s) in a row")
        if m.status == "fail":
            out.append(GateCase("gate", name, False, text))
        else:
            out.append(GateCase("gate", name, True, note=("warning: " + text) if m.status == "warn" else ""))
    return out


def cases(r: LoadReport) -> list[GateCase]:
    return [*threshold_cases(r), *check_cases(r), *grade_cases(r), *regression_cases(r), *history_cases(r)]


def failed(r: LoadReport) -> list[GateCase]:
    return [c for c in cases(r) if not c.ok]
