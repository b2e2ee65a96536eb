"""The concise Markdown a CI job shows on its summary page (GitHub's $GITHUB_STEP_SUMMARY).

`to_markdown` is pure; `append` is the only I/O and does nothing when the variable is unset."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from payctl.loadtest.gates import failed
from payctl.loadtest.render import METRIC_LABELS, band_low, fmt, metric_change, metric_value, pct
from payctl.loadtest.report import LoadReport

ENV = "GITHUB_STEP_SUMMARY"


def _ms(value: float | None) -> str:
    return fmt(value, " ms")


def to_markdown(r: LoadReport, title: str = "Load test") -> str:
    mark = "✅ PASS" if r.verdict.passed else "❌ FAIL"
    lat = r.latency_ms
    apdex = r.apdex.all
    lines = [f"### {title}: {mark} — grade **{r.grade.grade.name}**", "",
             f"`{r.source}` · {r.grade.reason}", "",
             "| requests | throughput | achieved / target | p95 | p99 | errors | dropped | Apdex |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {fmt(r.requests)} | {fmt(r.throughput_rps, '/s')} | "
             f"{fmt(r.achieved_rate, '/s')} / {fmt(r.target_rate, '/s')} | {_ms(lat.p95)} | "
             f"{_ms(lat.p99)} | {pct(r.failure_rate)} | {pct(r.dropped_share)} | "
             f"{fmt(apdex.score if apdex else None, digits=2)} |"]
    bad = failed(r)
    if bad:
        lines += ["", "**Failed gates**", ""] + [f"- {c.message}" for c in bad]
    if r.comparison is not None:
        lines += ["", f"**Against baseline** `{r.baseline}`", "", "| metric | baseline | current | change | |",
                  "|---|---:|---:|---:|---|"]
        for d in r.comparison:
            lines.append(f"| {METRIC_LABELS.get(d.metric, d.metric)} | {metric_value(d.metric, d.baseline)} | "
                         f"{metric_value(d.metric, d.current)} | {metric_change(d)} | "
                         f"{'🔴 regression' if d.regression else 'ok'} |")
    h = r.history
    if h:
        lines += ["", f"**Against the last {h.window} runs** of {h.scenario} at {h.rate}/s "
                      f"(median ± {h.k:g}·MAD, fail after {h.consecutive} in a row)", "",
                  "| metric | median | band | current | |", "|---|---:|---:|---:|---|"]
        icon = {"ok": "ok", "warn": "🟠 outside once", "fail": "🔴 regression", "insufficient": "too few runs"}
        for m in h.metrics:
            b = m.band
            v = functools.partial(metric_value, m.metric)
            band = "—" if b is None else f"{band_low(m.metric, b.low)} … {v(b.high)}"
            lines.append(f"| {METRIC_LABELS.get(m.metric, m.metric)} | {v(b.median if b else None)} | {band} | "
                         f"{v(m.current)} | {icon[m.status]} |")
    return "\n".join(lines) + "\n\n"


def append(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append to the file $GITHUB_STEP_SUMMARY names; None when it is unset."""
    target = (os.environ if env is None else env).get(ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown)
    return path
