"""Render a `LoadReport` as a rich table, Markdown, JSON or one self-contained HTML file."""

from __future__ import annotations

import functools
import json
from pathlib import Path
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

# What gives Apdex when the input is a k6 summary (analyze has no switch that could).
APDEX_NEEDS = ("no per-request data in a k6 summary: Apdex needs the NDJSON stream of "
               "`k6 run --out json=FILE` (`loadtest run` keeps it as raw.ndjson.gz in the run folder unless --no-raw)")

# How people read each compared or gated metric: rounded, with its unit (JSON keeps every digit).
METRIC_LABELS = {"p95_ms": "p95", "p99_ms": "p99", "avg_ms": "avg", "throughput_rps": "throughput",
                 "error_rate": "error rate"}


def metric_value(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    if metric == "error_rate":
        return f"{value:.2%}"
    if metric == "throughput_rps":
        return fmt(float(value), " req/s")
    if metric.endswith("_ms"):
        return fmt(float(value), " ms", digits=2 if abs(value) < 10 else 1)
    return fmt(float(value), digits=2)


def band_low(metric: str, value: float) -> str:
    """A band's lower end without the unit its upper end shows ("16.2 … 17.8 req/s")."""
    text = metric_value(metric, value)
    for unit in (" ms", " req/s"):
        text = text.removesuffix(unit)
    return text


def metric_change(d: DeltaRow) -> str:
    """Relative for latency and throughput; in percentage points for the error rate."""
    if d.baseline is None or d.current is None:
        return "—"
    if d.metric == "error_rate":
        return f"{(d.current - d.baseline) * 100:+.2f} pp"
    return "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:g}/s"


def header_parts(r: LoadReport) -> list[tuple[str, str]]:
    """The run the report is about, as far as the input says: scenario, target rate, start (UTC),
    payctl version, git commit."""
    run = r.run
    parts = [("scenario", run.scenario), ("target rate", rate_text(r.target_rate) if r.target_rate else None),
             ("started (UTC)", run.started), ("payctl", run.payctl_version), ("commit", run.git_commit)]
    return [(k, v) for k, v in parts if v]


def header_line(r: LoadReport) -> str:
    parts = header_parts(r)
    return " · ".join(f"{k} {v}" for k, v in parts) if parts else ""


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
HISTORY_COLUMNS = ("metric", "median", "MAD", "band", "current", "in a row", "status")


def apdex_title(r: LoadReport) -> str:
    return f"Apdex (T = {fmt(r.apdex.t_ms, ' ms', digits=0)}; tolerating ≤ 4T; failed requests are frustrated)"


def apdex_rows(r: LoadReport) -> list[list[str]]:
    """Overall and per operation; `—` when the input holds no per-request data (summaries)."""

    def row(name: str, x: ApdexRow | None) -> list[str]:
        if x is None:
            return [name, "—", "—", "—", "—", "—", "—"]
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


def apdex_note(r: LoadReport) -> str:
    """Why Apdex is missing, and which input would give it; empty when it is there."""
    return APDEX_NEEDS if r.apdex.all is None else ""


def history_rows(r: LoadReport) -> list[list[str]]:
    rows = []
    for m in r.history.metrics if r.history else []:
        b = m.band
        v = functools.partial(metric_value, m.metric)
        band = f"{band_low(m.metric, b.low)} … {v(b.high)}" if b else "—"
        rows.append([METRIC_LABELS.get(m.metric, m.metric), v(b.median if b else None), v(b.mad if b else None),
                     band, v(m.current), str(m.outside_runs), m.status])
    return rows


def history_title(r: LoadReport) -> str:
    h = r.history
    if h is None:
        return ""
    return (f"against {h.baseline_runs} earlier run(s) of {h.scenario} at {h.rate}/s "
            f"(median ± {h.k:g}·MAD; {h.consecutive} in a row outside fails) — {h.status.upper()}")


STAGE_COLUMNS = ("stage", "drained by", "backlog start", "backlog end", "slope", "lag p95", "kept up")
STAGES_TITLE = "Stages: did every stage keep up? (backlog flat over the run)"


def kept_up_text(kept_up: bool | None) -> str:
    return "no data" if kept_up is None else ("yes" if kept_up else "NO")


def stage_rows(r: LoadReport) -> list[list[str]]:
    """One row per stage; exact numbers are in --json."""
    return [[s.stage, s.consumer, fmt(s.backlog_start, digits=0), fmt(s.backlog_end, digits=0),
             "—" if s.slope_per_s is None else f"{s.slope_per_s:+.1f}/s", fmt(s.lag_p95_s, " s", digits=2),
             kept_up_text(s.kept_up)] for s in r.stages or []]


def to_rich(r: LoadReport) -> Group:
    parts: list[Any] = []
    if header_line(r):
        parts.append(Text(header_line(r)))
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
    apdex = Table(title=apdex_title(r), title_justify="left", caption=apdex_note(r) or None,
                  caption_justify="left")
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
    if r.stages is not None:
        stages = Table(title=STAGES_TITLE, title_justify="left")
        for col in STAGE_COLUMNS:
            stages.add_column(col, justify="left" if col in ("stage", "drained by", "kept up") else "right")
        kept_colour = {"yes": "green", "NO": "red", "no data": "yellow"}
        for row in stage_rows(r):
            stages.add_row(*row[:-1], f"[{kept_colour[row[-1]]}]{row[-1]}[/{kept_colour[row[-1]]}]")
        parts.append(stages)
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
            hist.add_column(col, no_wrap=col in ("metric", "band", "status"))
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


DELTA_COLUMNS = ("metric", "baseline", "current", "change", "limit", "result")


def delta_rows(comparison: list[DeltaRow]) -> list[list[str]]:
    """Rounded, with units; `limit`: what the current run may not cross (tolerance and floor)."""
    return [[METRIC_LABELS.get(d.metric, d.metric), metric_value(d.metric, d.baseline),
             metric_value(d.metric, d.current), metric_change(d), metric_value(d.metric, d.limit),
             "REGRESSION" if d.regression else "ok" if d.limit is not None else "—"] for d in comparison]


def _delta_table(title: str, comparison: list[DeltaRow]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in DELTA_COLUMNS:
        t.add_column(col, justify="left" if col in ("metric", "result") else "right")
    for row in delta_rows(comparison):
        t.add_row(*row[:-1], "[red]REGRESSION[/red]" if row[-1] == "REGRESSION" else row[-1])
    return t


def _comparison_table(r: LoadReport, comparison: list[DeltaRow]) -> Table:
    return _delta_table(f"vs baseline {r.baseline}", comparison)


def label(r: LoadReport) -> str:
    """A short name for a compared run: its run folder's name, else its file's name."""
    source = Path(r.source)
    return source.parent.name if r.run.scenario and source.parent.name else source.name


def runs_rows(baseline: LoadReport, current: LoadReport) -> list[list[str]]:
    def row(name: str, get: Any) -> list[str]:
        return [name, get(baseline) or "—", get(current) or "—"]

    return [row("source", lambda r: r.source), row("scenario", lambda r: r.run.scenario),
            row("target rate", lambda r: rate_text(r.target_rate) if r.target_rate else None),
            row("started (UTC)", lambda r: r.run.started), row("payctl", lambda r: r.run.payctl_version),
            row("commit", lambda r: r.run.git_commit), row("grade", lambda r: r.grade.grade.name)]


def compare_title(baseline: LoadReport, current: LoadReport) -> str:
    return f"{label(baseline)} → {label(current)}"


def compare_verdict(current: LoadReport) -> str:
    regressed = [METRIC_LABELS.get(d.metric, d.metric) for d in current.comparison or [] if d.regression]
    return f"REGRESSION: {', '.join(regressed)}" if regressed else "no regression"


def compare_rich(baseline: LoadReport, current: LoadReport, tolerance: str = "") -> Group:
    """`loadtest compare A B` for people: the deltas first, then the two runs side by side and their
    grades (graded alike), then the verdict."""
    parts: list[Any] = [_delta_table(compare_title(baseline, current), current.comparison or [])]
    runs = Table(title="runs", title_justify="left")
    for col in ("", "baseline", "current"):
        runs.add_column(col, overflow="fold")
    for row in runs_rows(baseline, current):
        runs.add_row(*row)
    parts.append(runs)
    for name, r in (("baseline", baseline), ("current", current)):
        parts.append(Text(f"{name}: grade {r.grade.grade.name} — {r.grade.reason}"))
    v = current.verdict
    parts.append(Text.from_markup(
        f"verdict: {'[red]' if v.regression else '[green]'}{compare_verdict(current)}[/]"
        + (f" (tolerance {tolerance})" if tolerance else "") + " · the current run "
        f"{'passes' if v.passed else 'fails'} its report verdict (min grade {v.min_grade.name}, "
        f"failed thresholds {v.failed_thresholds})"))
    return Group(*parts)


def compare_markdown(baseline: LoadReport, current: LoadReport, tolerance: str = "") -> str:
    title = f"`{label(baseline)}` → `{label(current)}`"
    lines = [f"# Load test comparison {title} — {compare_verdict(current)}", ""]
    if tolerance:
        lines += [f"Tolerance {tolerance}.", ""]
    lines += table(list(DELTA_COLUMNS), [[*row[:-1], "**REGRESSION**" if row[-1] == "REGRESSION" else row[-1]]
                                         for row in delta_rows(current.comparison or [])])
    lines += ["", "## Runs", "", *table(["", "baseline", "current"], runs_rows(baseline, current))]
    for name, r in (("baseline", baseline), ("current", current)):
        lines += ["", f"- {name}: grade **{r.grade.grade.name}** — {r.grade.reason}"]
    v = current.verdict
    lines += ["", f"**{compare_verdict(current)}**; the current run {'passes' if v.passed else 'fails'} its "
                  f"report verdict (minimum grade {v.min_grade.name}).", ""]
    return "\n".join(lines)


def to_markdown(r: LoadReport) -> str:
    lines = [f"# Load test report — grade **{r.grade.grade.name}**", ""]
    if header_line(r):
        lines += [header_line(r), ""]
    lines += [f"> {r.grade.reason}", ""]
    if r.api_auth == "off":  # numbers without the key check are not comparable: said first
        lines += [f"**{AUTH_OFF}**", ""]
    lines += table(["", ""], overview_rows(r))
    lines += ["", "## Latency (ms)", "", *table(["operation", *STATS], latency_rows(r))]
    lines += ["", f"## {apdex_title(r)}", "", *table(APDEX_COLUMNS, apdex_rows(r))]
    if r.timeline:
        lines += ["", f"## {timeline_title(r).capitalize()}", "", *table(TIMELINE_COLUMNS, timeline_rows(r))]
    if r.stages is not None:
        rows = [[*row[:-1], "**NO**" if row[-1] == "NO" else row[-1]] for row in stage_rows(r)]
        lines += ["", f"## {STAGES_TITLE}", "", *table(list(STAGE_COLUMNS), rows)]
    if r.k6_dashboard is not None:
        d = r.k6_dashboard
        lines += ["", f"[k6 web dashboard]({d.file})" if d.file else f"**{dashboard_line(r)}**"]
    if apdex_note(r):
        lines += ["", apdex_note(r)]
    if r.checks:
        checks = [(c.name, c.passes, c.fails, "✔" if c.ok else "✘") for c in r.checks]
        lines += ["", "## Checks", "", *table(["check", "passes", "fails", "ok"], checks)]
    if r.thresholds:
        thresholds = [(t.metric, f"`{t.expression}`", fmt(t.observed, digits=3),
                       "pass" if t.ok else "**FAIL**") for t in r.thresholds]
        lines += ["", "## Thresholds", "", *table(["metric", "expression", "observed", "result"], thresholds)]
    if r.comparison is not None:
        deltas = [[*row[:-1], "**REGRESSION**" if row[-1] == "REGRESSION" else row[-1]]
                  for row in delta_rows(r.comparison)]
        lines += ["", f"## Against baseline `{r.baseline}`", "", *table(list(DELTA_COLUMNS), deltas)]
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
        apdex_title=apdex_title(r), apdex_columns=APDEX_COLUMNS, apdex=apdex_rows(r), apdex_note=apdex_note(r),
        header=header_parts(r), delta_columns=DELTA_COLUMNS,
        deltas=delta_rows(r.comparison) if r.comparison is not None else [],
        history_title=history_title(r), history_columns=HISTORY_COLUMNS, history=history_rows(r),
        stages_title=STAGES_TITLE, stage_columns=STAGE_COLUMNS,
        stages=stage_rows(r) if r.stages is not None else None)
