"""Runs over time from the history index: the data (pure, with each run's MAD-gate status) and
its one renderer, a self-contained HTML page with inline SVG (no script, nothing fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from payctl.errors import UsageError
from payctl.loadtest import mad
from payctl.loadtest.charts import run_chart
from payctl.loadtest.history import HistoryEntry, select
from payctl.loadtest.render import fmt, pct

_env = Environment(loader=PackageLoader("payctl", "templates"), autoescape=select_autoescape(["html", "j2"]))
CHARTS = (("throughput_rps", "Throughput (requests per second)", "req/s"),
          ("p95_ms", "p95 latency (ms)", "ms"), ("p99_ms", "p99 latency (ms)", "ms"),
          ("error_rate", "Error rate", "failed share"))


@dataclass(frozen=True)
class TrendRun:
    entry: HistoryEntry
    status: dict[str, str]  # metric → ok | warn | fail | insufficient (when it was the newest run)

    @property
    def regressed(self) -> list[str]:
        return [m for m, s in self.status.items() if s in ("warn", "fail")]

    @property
    def worst(self) -> str:
        return max(self.status.values(), key=mad.STATUS_ORDER.index, default="insufficient")


@dataclass(frozen=True)
class Trend:
    scenario: str | None
    rate: int | None
    window: int
    k: float
    consecutive: int
    runs: list[TrendRun] = field(default_factory=list)

    @property
    def groups(self) -> list[tuple[str, int]]:
        return sorted({(r.entry.scenario, r.entry.rate) for r in self.runs})


def build(entries: Sequence[HistoryEntry], *, scenario: str | None = None, rate: int | None = None,
          window: int = 10, k: float = mad.DEFAULT_K, consecutive: int = mad.DEFAULT_CONSECUTIVE) -> Trend:
    """Each run is judged like `compare --history` would have judged it, against the earlier runs
    of its own scenario and rate."""
    mad.check_settings(window, k, consecutive)
    chosen = sorted(select(entries, scenario, rate), key=_when)  # stable: same-second runs keep their order
    status: dict[int, dict[str, str]] = {id(e): {} for e in chosen}
    for group in sorted({(e.scenario, e.rate) for e in chosen}):
        members = [e for e in chosen if (e.scenario, e.rate) == group]
        for metric in mad.METRICS:
            marks = mad.statuses(metric, [e.metric(metric) for e in members], window=window, k=k,
                                 consecutive=consecutive)
            for e, mark in zip(members, marks, strict=True):
                status[id(e)][metric] = mark
    return Trend(scenario, rate, window, k, consecutive, [TrendRun(e, status[id(e)]) for e in chosen])


def _when(e: HistoryEntry) -> float:
    try:
        moment = datetime.fromisoformat(e.started)
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _chart(t: Trend, metric: str, y_label: str) -> str:
    series: dict[str, list[tuple[int, float, str, str]]] = {}
    for i, run in enumerate(t.runs):
        value = run.entry.metric(metric)
        if value is None:
            continue
        shown = pct(value) if metric == "error_rate" else fmt(value)
        tip = f"{run.entry.run} · {run.entry.started} · {metric} {shown} · {run.status.get(metric, '')}"
        series.setdefault(f"{run.entry.scenario} @ {run.entry.rate}/s", []).append(
            (i, value, run.status.get(metric, "ok"), tip))
    labels = [r.entry.started[:16].replace("T", " ") for r in t.runs]
    return run_chart(series, labels, y_label=y_label, percent=metric == "error_rate")


def to_html(t: Trend) -> str:
    if not t.runs:
        raise UsageError("no run to chart", "record runs with `payctl loadtest run` (or check --scenario/--rate)")
    charts = [(metric, title, _chart(t, metric, unit)) for metric, title, unit in CHARTS]
    rows = [[r.entry.started.replace("T", " "), r.entry.run, (r.entry.git_commit or "—")[:10]
             + ("+" if r.entry.git_dirty else ""), f"{r.entry.scenario} @ {r.entry.rate}/s", r.entry.grade,
             "PASS" if r.entry.passed else "FAIL", fmt(r.entry.throughput_rps), fmt(r.entry.p95_ms),
             fmt(r.entry.p99_ms), pct(r.entry.error_rate), ", ".join(f"{m} {r.status[m]}" for m in r.regressed) or "—"]
            for r in t.runs]
    return _env.get_template("loadtest_trend.html.j2").render(t=t, charts=charts, rows=rows, runs=t.runs)
