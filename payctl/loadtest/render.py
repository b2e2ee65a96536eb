"""Render a `LoadReport` as a rich table, Markdown, JSON or one self-contained HTML file."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Group
from rich.table import Table
from rich.text import Text

from payctl.loadtest.charts import line_chart
from payctl.loadtest.grade import Grade
from payctl.loadtest.report import ApdexRow, DeltaRow, LatencyStats, LoadReport
from payctl.markdown import table

_env = Environment(loader=PackageLoader("payctl", "templates"), autoescape=select_autoescape(["html", "j2"]))
STATS = ("avg", "min", "med", "p90", "p95", "p99", "max")


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


AUTH_OFF = "API authentication: OFF"


def dashboard_line(r: LoadReport) -> str:
    d = r.k6_dashboard
    if d is None:
        return ""
    return f"k6 web dashboard: {d.file} (beside this report)" if d.file else f"NO k6 web dashboard: {d.note}"


def overview_rows(r: LoadReport) -> list[tuple[str, str]]:
    auth = [("API authentication", "OFF (api_auth = \"off\")")] if r.api_auth == "off" else []
    return [
        *auth,
        ("source", f"{r.source} ({r.shape})"),
        ("requests", fmt(r.requests)),
        ("duration", fmt(r.duration_s, " s")),
        ("throughput", fmt(r.throughput_rps, " req/s")),
        ("arrival rate (achieved / target)", f"{fmt(r.achieved_rate, '/s')} / {fmt(r.target_rate, '/s')}"),
        ("dropped iterations", f"{fmt(r.dropped_iterations)} ({pct(r.dropped_share)})"),
        ("failed requests", f"{fmt(r.failed_requests)} ({pct(r.failure_rate)})"),
    ]


def _stats(lat: LatencyStats) -> list[str]:
    return [fmt(getattr(lat, k)) for k in STATS]


def latency_rows(r: LoadReport) -> list[list[str]]:
    rows = [["all", *_stats(r.latency_ms)]]
    for op, lat in r.per_operation.items():
        rows.append([op, *_stats(lat)])
    return rows


APDEX_COLUMNS = ("operation", "Apdex", "rating", "satisfied", "tolerating", "frustrated", "samples")
HISTORY_COLUMNS = ("metric", "median", "MAD", "band", "current", "outside in a row", "status")


def apdex_title(r: LoadReport) -> str:
    return f"Apdex (T = {fmt(r.apdex.t_ms, ' ms', digits=0)}; tolerating ≤ 4T; failed requests are frustrated)"


def apdex_rows(r: LoadReport) -> list[list[str]]:
    """Overall and per operation; `—` when the input holds no per-request data (summaries)."""

    def row(name: str, x: ApdexRow | None) -> list[str]:
        if x is None:
            return [name, "—", "needs per-request data", "—", "—", "—", "—"]
        return [name, fmt(x.score, digits=2), x.rating, fmt(x.satisfied), fmt(x.tolerating),
                fmt(x.frustrated), fmt(x.samples)]

    ops = r.apdex.per_operation or dict.fromkeys(r.per_operation)
    return [row("all", r.apdex.all), *[row(op, x) for op, x in ops.items()]]


SPARK = "▁▂▃▄▅▆▇█"
TIMELINE_COLUMNS = ("series", "min", "avg", "max", "per second")


def _series(r: LoadReport) -> list[tuple[str, list[float], int]]:
    """The charts' series: (name, one value per second, digits to round to)."""
    tl = r.timeline
    return [("requests/s", [float(p.requests) for p in tl], 0),
            ("failures/s", [float(p.failures) for p in tl], 0),
            *[(f"{name} ms", [v for p in tl if (v := getattr(p, name)) is not None], 1)
              for name in ("p50", "p95", "p99")],
            ("VUs", [float(p.vus) for p in tl if p.vus is not None], 0)]


def sparkline(values: list[float], width: int = 40) -> str:
    """Unicode blocks, one per bucket of seconds (the bucket's maximum), scaled from 0 to the top."""
    if not values:
        return ""
    size = -(-len(values) // width)
    buckets = [max(values[i:i + size]) for i in range(0, len(values), size)]
    top = max(buckets)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] if top > 0 else SPARK[0]
                   for v in buckets)


def timeline_rows(r: LoadReport) -> list[list[str]]:
    """One row per chart: the series as a sparkline, rounded min/avg/max (empty without a timeline)."""
    rows = []
    for name, values, digits in _series(r):
        if values:
            rows.append([name, fmt(min(values), digits=digits), fmt(sum(values) / len(values), digits=1),
                         fmt(max(values), digits=digits), sparkline(values)])
    return rows


def timeline_title(r: LoadReport) -> str:
    return f"over time ({len(r.timeline)} s)"


def history_rows(r: LoadReport) -> list[list[str]]:
    rows = []
    for m in r.history.metrics if r.history else []:
        b = m.band
        band = f"{fmt(b.low, digits=4)} … {fmt(b.high, digits=4)}" if b else "—"
        rows.append([m.metric, fmt(b.median if b else None, digits=4), fmt(b.mad if b else None, digits=4), band,
                     fmt(m.current, digits=4), str(m.outside_runs), m.status])
    return rows


def history_title(r: LoadReport) -> str:
    h = r.history
    if h is None:
        return ""
    return (f"against {h.baseline_runs} earlier run(s) of {h.scenario} at {h.rate}/s "
            f"(median ± {h.k:g}·MAD; {h.consecutive} in a row outside fails) — {h.status.upper()}")


def to_rich(r: LoadReport) -> Group:
    parts: list[Any] = []
    overview = Table(title="load test", title_justify="left", show_header=False)
    overview.add_column("", style="bold")
    overview.add_column("")
    for k, v in overview_rows(r):
        overview.add_row(k, v)
    parts.append(overview)
    lat = Table(title="latency (ms)", title_justify="left")
    for col in ("operation", *STATS):
        lat.add_column(col, justify="right" if col != "operation" else "left")
    for row in latency_rows(r):
        lat.add_row(*row)
    parts.append(lat)
    apdex = Table(title=apdex_title(r), title_justify="left")
    for col in APDEX_COLUMNS:
        apdex.add_column(col, justify="left" if col in ("operation", "rating") else "right")
    for row in apdex_rows(r):
        apdex.add_row(*row)
    parts.append(apdex)
    if r.timeline:
        over = Table(title=timeline_title(r), title_justify="left")
        for col in TIMELINE_COLUMNS:
            over.add_column(col, justify="right" if col in ("min", "avg", "max") else "left")
        for row in timeline_rows(r):
            over.add_row(*row)
        parts.append(over)
    if r.k6_dashboard is not None:
        parts.append(Text(dashboard_line(r), style="bold yellow" if r.k6_dashboard.file is None else ""))
    if r.checks:
        checks = Table(title="checks", title_justify="left")
        for col in ("check", "passes", "fails", ""):
            checks.add_column(col)
        for c in r.checks:
            checks.add_row(c.name, str(c.passes), str(c.fails), "✔" if c.ok else "✘")
        parts.append(checks)
    if r.thresholds:
        ths = Table(title="thresholds", title_justify="left")
        for col in ("metric", "expression", "observed", "result"):
            ths.add_column(col)
        for t in r.thresholds:
            ths.add_row(t.metric, t.expression, fmt(t.observed, digits=3),
                        "[green]pass[/green]" if t.ok else "[red]FAIL[/red]")
        parts.append(ths)
    if r.comparison is not None:
        parts.append(_comparison_table(r, r.comparison))
    if r.history:
        hist = Table(title=history_title(r), title_justify="left")
        for col in HISTORY_COLUMNS:
            hist.add_column(col)
        status_colour = {"fail": "red", "warn": "yellow", "ok": "green"}
        for row in history_rows(r):
            colour = status_colour.get(row[-1])
            hist.add_row(*row[:-1], f"[{colour}]{row[-1]}[/{colour}]" if colour else row[-1])
        parts.append(hist)
    g = r.grade
    grade_colour = {Grade.EXCELLENT: "green", Grade.GOOD: "green", Grade.FAIR: "yellow"}.get(g.grade, "red")
    parts.append(Text.from_markup(f"grade: [bold {grade_colour}]{g.grade.name}[/] — {g.reason}"))
    verdict = r.verdict
    parts.append(Text.from_markup(
        f"verdict: {'[green]PASS[/green]' if verdict.passed else '[red]FAIL[/red]'} (min grade "
        f"{verdict.min_grade.name}, failed thresholds {verdict.failed_thresholds}, "
        f"regression {'yes' if verdict.regression else 'no'})"))
    return Group(*parts)


def _comparison_table(r: LoadReport, comparison: list[DeltaRow]) -> Table:
    t = Table(title=f"vs baseline {r.baseline}", title_justify="left")
    for col in ("metric", "baseline", "current", "change", "regression"):
        t.add_column(col)
    for d in comparison:
        change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
        digits = 4 if d.metric == "error_rate" else 1
        t.add_row(d.metric, fmt(d.baseline, digits=digits), fmt(d.current, digits=digits), change,
                  "[red]REGRESSION[/red]" if d.regression else "ok")
    return t


def to_markdown(r: LoadReport) -> str:
    lines = [f"# Load test report — grade **{r.grade.grade.name}**", "", f"> {r.grade.reason}", ""]
    if r.api_auth == "off":  # numbers without the key check are not comparable: said first
        lines += [f"**{AUTH_OFF}**", ""]
    lines += table(["", ""], overview_rows(r))
    lines += ["", "## Latency (ms)", "", *table(["operation", *STATS], latency_rows(r))]
    lines += ["", f"## {apdex_title(r)}", "", *table(APDEX_COLUMNS, apdex_rows(r))]
    if r.timeline:
        lines += ["", f"## {timeline_title(r).capitalize()}", "", *table(TIMELINE_COLUMNS, timeline_rows(r))]
    if r.k6_dashboard is not None:
        d = r.k6_dashboard
        lines += ["", f"[k6 web dashboard]({d.file})" if d.file else f"**{dashboard_line(r)}**"]
    if r.checks:
        checks = [(c.name, c.passes, c.fails, "✔" if c.ok else "✘") for c in r.checks]
        lines += ["", "## Checks", "", *table(["check", "passes", "fails", "ok"], checks)]
    if r.thresholds:
        thresholds = [(t.metric, f"`{t.expression}`", fmt(t.observed, digits=3),
                       "pass" if t.ok else "**FAIL**") for t in r.thresholds]
        lines += ["", "## Thresholds", "", *table(["metric", "expression", "observed", "result"], thresholds)]
    if r.comparison is not None:
        deltas = [(d.metric, fmt(d.baseline, digits=4), fmt(d.current, digits=4),
                   "—" if d.change_pct is None else f"{d.change_pct:+.1f}%",
                   "**REGRESSION**" if d.regression else "ok") for d in r.comparison]
        lines += ["", f"## Against baseline `{r.baseline}`", "",
                  *table(["metric", "baseline", "current", "change", ""], deltas)]
    if r.history:
        lines += ["", f"## {history_title(r)}", "", *table(HISTORY_COLUMNS, history_rows(r))]
    v = r.verdict
    lines += ["", f"**Verdict: {'PASS' if v.passed else 'FAIL'}** (minimum grade {v.min_grade.name})", ""]
    return "\n".join(lines)


def to_json(r: LoadReport) -> str:
    return json.dumps(r.as_json(), indent=2)


def html_charts(r: LoadReport) -> list[tuple[str, str]]:
    """(title, inline SVG) per chart over time; none without a timeline."""
    tl = r.timeline
    if not tl:
        return []
    charts = [("Throughput (requests per second)", line_chart({"requests/s": [(p.second, p.requests) for p in tl]},
                                                             y_label="req/s")),
              ("Errors (failed requests per second)", line_chart({"failures/s": [(p.second, p.failures) for p in tl]},
                                                                y_label="failures/s")),
              ("Latency percentiles over time (ms)", line_chart(
                  {name: [(p.second, value) for p in tl if (value := getattr(p, name)) is not None]
                   for name in ("p50", "p95", "p99")}, y_label="ms"))]
    vus = [(float(p.second), float(p.vus)) for p in tl if p.vus is not None]
    if vus:
        charts.append(("Virtual users (active VUs)", line_chart({"VUs": vus}, y_label="VUs")))
    return charts


def to_html(r: LoadReport) -> str:
    charts = html_charts(r)
    return _env.get_template("loadtest_report.html.j2").render(
        r=r, overview=overview_rows(r), dashboard=dashboard_line(r), latency=latency_rows(r), stats=STATS,
        charts=charts, fmt=fmt,
        apdex_title=apdex_title(r), apdex_columns=APDEX_COLUMNS, apdex=apdex_rows(r),
        history_title=history_title(r), history_columns=HISTORY_COLUMNS, history=history_rows(r))
