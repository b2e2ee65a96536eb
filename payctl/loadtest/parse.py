"""Read any k6 output: detect the shape from the content, never from the file name.

Shapes: `summary-export` (k6 --summary-export: flat stats, thresholds true = crossed),
`handle-summary` (the data handed to handleSummary: metrics.X.values, thresholds {ok}), and
`raw-ndjson` (k6 --out json, plain or gzip), streamed line by line."""

from __future__ import annotations

import gzip
import json
import re
from array import array
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from payctl.errors import UsageError
from payctl.loadtest import thresholds as th
from payctl.loadtest.apdex import DEFAULT_T_MS, ApdexCounter
from payctl.loadtest.model import CheckResult, Latency, LoadSummary, ThresholdResult, TimelinePoint
from payctl.loadtest.stats import latency_of, percentile

MAX_SUMMARY_BYTES = 64 * 1024 * 1024
TARGET_RATE_METRIC = "scenario_target_rate"
_OP_TREND = re.compile(r"^payment_(?P<op>[a-z_]+)_duration$")
_SUBMETRIC = re.compile(r"^(?P<metric>[^{]+)\{(?P<tags>.*)\}$")


class NotK6Output(UsageError):
    pass


def _problem(path: Path, what: str) -> NotK6Output:
    return NotK6Output(f"{path}: {what}", "pass a file written by k6 (--summary-export, handleSummary or --out json)")


def _open(path: Path) -> IO[bytes]:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def detect(path: Path) -> str:
    with _open(path) as fh:
        try:
            head = fh.read(4096)
        except (OSError, EOFError) as exc:
            raise _problem(path, f"unreadable compressed data ({exc})") from exc
    text = head.lstrip()
    if not text:
        raise _problem(path, "the file is empty")
    if not text.startswith(b"{"):
        raise _problem(path, "not JSON (k6 output starts with '{')")
    first_line = text.split(b"\n", 1)[0]
    try:
        first = json.loads(first_line)
    except ValueError:
        first = None
    if isinstance(first, dict) and first.get("type") in ("Metric", "Point"):
        return "raw-ndjson"
    return "summary"


def parse(path: Path, target_rate: float | None = None, apdex_t_ms: float = DEFAULT_T_MS) -> LoadSummary:
    """`apdex_t_ms`: Apdex's target time T; only the raw stream can be scored (summaries hold no
    per-request distribution, so their Apdex stays None)."""
    shape = detect(path)
    summary = _parse_raw(path, apdex_t_ms) if shape == "raw-ndjson" else _parse_summary(path)
    if target_rate is not None:
        summary.target_rate = target_rate
    if summary.requests is None or summary.requests == 0:
        raise _problem(path, "records zero HTTP requests; there is nothing to analyze")
    return summary


# -- summary shapes --------------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    with _open(path) as fh:
        data = fh.read(MAX_SUMMARY_BYTES + 1)
    if len(data) > MAX_SUMMARY_BYTES:
        raise _problem(path, "too large for a k6 summary and not an NDJSON stream")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        if exc.pos >= len(data.rstrip()) - 1:
            raise _problem(path, f"truncated JSON (ends unexpectedly at {where})") from exc
        raise _problem(path, f"invalid JSON at {where}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise _problem(path, "not text") from exc


def _parse_summary(path: Path) -> LoadSummary:
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise _problem(path, "no 'metrics' object: not a k6 summary")
    metrics: dict[str, Any] = doc["metrics"]
    if not metrics:
        raise _problem(path, "the 'metrics' object is empty")
    nested = any(isinstance(m, dict) and isinstance(m.get("values"), dict) for m in metrics.values())
    shape = "handle-summary" if nested else "summary-export"

    def values(name: str) -> dict[str, Any] | None:
        m = metrics.get(name)
        if not isinstance(m, dict):
            return None
        v = m.get("values") if nested else m
        return v if isinstance(v, dict) else None

    s = LoadSummary(source=str(path), shape=shape)
    reqs = values("http_reqs")
    if reqs:
        s.requests = _int(reqs.get("count"))
        s.throughput_rps = _float(reqs.get("rate"))
    iters = values("iterations")
    if iters:
        s.iterations = _int(iters.get("count"))
        s.achieved_rate = _float(iters.get("rate"))
    duration_ms = (doc.get("state") or {}).get("testRunDurationMs") if nested else None
    if duration_ms is not None:
        s.duration_s = float(duration_ms) / 1000
    elif s.requests and s.throughput_rps:
        s.duration_s = s.requests / s.throughput_rps
    dropped = values("dropped_iterations")
    # k6 registers dropped_iterations only when it drops one: absent means none were dropped.
    s.dropped_iterations = _int(dropped.get("count")) if dropped else (0 if s.iterations is not None else None)
    target = values(TARGET_RATE_METRIC)
    if target:
        s.target_rate = _float(target.get("value", target.get("max")))
    failed = values("http_req_failed")
    if failed:
        rate = failed.get("rate", failed.get("value"))
        s.failure_rate = _float(rate)
        # In k6's Rate, `passes` counts true values: for http_req_failed that is FAILED requests.
        s.failed_requests = _int(failed.get("passes"))
    duration = values("http_req_duration")
    if duration:
        s.latency = _latency(duration, s.requests)
    for name in metrics:
        sub = _SUBMETRIC.match(name)
        if sub and sub.group("metric") == "http_req_duration" and sub.group("tags").startswith("op:"):
            v = values(name)
            if v:
                s.per_operation[sub.group("tags")[3:]] = _latency(v, None)
    for name in metrics:
        trend = _OP_TREND.match(name)
        if trend and trend.group("op") not in s.per_operation:
            v = values(name)
            if v:
                s.per_operation[trend.group("op")] = _latency(v, None)
    s.checks = _checks(doc.get("root_group"))
    for name, m in metrics.items():
        raw_thresholds = m.get("thresholds") if isinstance(m, dict) else None
        if not isinstance(raw_thresholds, dict):
            continue
        stats = _stat_map(values(name) or {})
        for expression, verdict in raw_thresholds.items():
            # summary-export: true means the threshold was CROSSED; handleSummary: {"ok": bool}
            ok = bool(verdict.get("ok")) if isinstance(verdict, dict) else not bool(verdict)
            s.thresholds.append(ThresholdResult(name, expression, ok, th.observed_value(expression, stats)))
    return s


def _stat_map(v: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {k: _float(x) for k, x in v.items() if isinstance(x, int | float)}
    if "value" in out and "rate" not in out:
        out["rate"] = out["value"]
    return out


def _latency(v: dict[str, Any], count: int | None) -> Latency:
    return Latency(avg=_float(v.get("avg")), min=_float(v.get("min")), med=_float(v.get("med")),
                   p90=_float(v.get("p(90)")), p95=_float(v.get("p(95)")), p99=_float(v.get("p(99)")),
                   max=_float(v.get("max")), count=count)


def _checks(group: Any) -> list[CheckResult]:
    out: list[CheckResult] = []
    if not isinstance(group, dict):
        return out
    checks = group.get("checks") or []
    items = checks.values() if isinstance(checks, dict) else checks
    for c in items:
        if isinstance(c, dict) and "name" in c:
            out.append(CheckResult(str(c["name"]), int(c.get("passes", 0)), int(c.get("fails", 0))))
    groups = group.get("groups") or []
    for sub in groups.values() if isinstance(groups, dict) else groups:
        out.extend(_checks(sub))
    return out


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


# -- raw NDJSON -----------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open(path) as fh:
        yield from enumerate(fh, 1)


_SECOND_CACHE: dict[str, float] = {}
_METRIC_NAME = re.compile(rb'"metric":\s*"([^"]+)"')
_IS_POINT = re.compile(rb'"type":\s*"Point"')
_WANTED = {b"http_req_duration", b"http_reqs", b"http_req_failed", b"iterations", b"dropped_iterations",
           b"checks", TARGET_RATE_METRIC.encode()}


def _parse_time(value: str) -> float:
    """k6's RFC 3339 UTC timestamps with nanoseconds → unix seconds (cached per whole second)."""
    head, _, frac = value.partition(".")
    base = _SECOND_CACHE.get(head)
    if base is None:
        base = datetime.fromisoformat(head.rstrip("Z") + "+00:00").timestamp()
        if len(_SECOND_CACHE) > 100_000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[head] = base
    digits = frac.rstrip("Z")
    return base + (float("0." + digits) if digits.isdigit() else 0.0)


def _parse_raw(path: Path, apdex_t_ms: float = DEFAULT_T_MS) -> LoadSummary:
    durations = array("d")
    apdex_all = ApdexCounter(apdex_t_ms)
    apdex_op: dict[str, ApdexCounter] = {}
    apdex_trend: dict[str, ApdexCounter] = {}
    per_op: dict[str, array[float]] = defaultdict(lambda: array("d"))
    per_second: dict[int, array[float]] = defaultdict(lambda: array("d"))
    failures_per_second: dict[int, int] = defaultdict(int)
    requests = failed = iterations = dropped = 0
    first_ts: float | None = None
    last_ts: float | None = None
    target_rate: float | None = None
    checks: dict[str, list[int]] = {}
    declared: dict[str, list[str]] = {}
    failed_values = 0
    custom_trends: dict[str, array[float]] = defaultdict(lambda: array("d"))
    for number, line in _lines(path):
        if not line.strip():
            continue
        # Fast path: most points are metrics analyze does not use; skip them without parsing JSON.
        found = _METRIC_NAME.search(line, 0, 200)
        if found and found.group(1) not in _WANTED and not found.group(1).startswith(b"payment_") \
                and _IS_POINT.search(line, 0, 200):
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise _problem(path, f"line {number} is not valid JSON (truncated stream?)") from exc
        kind = item.get("type")
        if kind == "Metric":
            data = item.get("data") or {}
            if data.get("thresholds"):
                declared[str(data.get("name"))] = list(data["thresholds"])
            continue
        if kind != "Point":
            continue
        metric = item.get("metric")
        data = item["data"]
        if metric == "http_req_duration":
            ts = _parse_time(data["time"])
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
            value = float(data["value"])
            durations.append(value)
            tags = data.get("tags") or {}
            op = str(tags.get("op", "-"))
            per_op[op].append(value)
            per_second[int(ts)].append(value)
            ok = tags.get("expected_response") != "false"
            apdex_all.add(value, ok)
            apdex_op.setdefault(op, ApdexCounter(apdex_t_ms)).add(value, ok)
        elif metric == "http_reqs":
            requests += int(data["value"])
        elif metric == "http_req_failed":
            if data["value"]:
                failed += 1
                failures_per_second[int(_parse_time(data["time"]))] += 1
            failed_values += 1
        elif metric == "iterations":
            iterations += int(data["value"])
        elif metric == "dropped_iterations":
            dropped += int(data["value"])
        elif metric == TARGET_RATE_METRIC:
            target_rate = float(data["value"])
        elif metric == "checks":
            name = str((data.get("tags") or {}).get("check", "?"))
            counts = checks.setdefault(name, [0, 0])
            counts[0 if data["value"] else 1] += 1
        elif isinstance(metric, str) and _OP_TREND.match(metric):
            custom_trends[metric].append(float(data["value"]))
            apdex_trend.setdefault(metric, ApdexCounter(apdex_t_ms)).add(float(data["value"]))
    if first_ts is None and requests == 0:
        raise _problem(path, "the stream holds no HTTP request points")
    s = LoadSummary(source=str(path), shape="raw-ndjson", requests=requests)
    if first_ts is not None and last_ts is not None:
        s.duration_s = max(last_ts - first_ts, 1e-9) + 1e-3
        s.throughput_rps = requests / s.duration_s
        s.achieved_rate = iterations / s.duration_s if iterations else None
    s.iterations = iterations
    s.dropped_iterations = dropped
    s.target_rate = target_rate
    s.failed_requests = failed
    s.failure_rate = failed / failed_values if failed_values else None
    s.latency = latency_of(durations)
    if set(per_op) != {"-"}:
        s.per_operation = {op: latency_of(v) for op, v in sorted(per_op.items())}
    if durations:
        s.apdex = apdex_all.result()
    if set(apdex_op) != {"-"}:
        s.apdex_per_operation = {op: c.result() for op, c in sorted(apdex_op.items())}
    for metric, values in custom_trends.items():
        op = _OP_TREND.match(metric).group("op")  # type: ignore[union-attr]
        s.per_operation.setdefault(op, latency_of(values))
        s.apdex_per_operation.setdefault(op, apdex_trend[metric].result())
    s.checks = [CheckResult(n, p, f) for n, (p, f) in checks.items()]
    total_checks = sum(p + f for p, f in checks.values())
    metric_stats: dict[str, dict[str, float | None]] = {
        "http_req_duration": _latency_stats(s.latency),
        "http_req_failed": {"rate": s.failure_rate},
        "checks": {"rate": (sum(p for p, _ in checks.values()) / total_checks) if total_checks else None},
        "http_reqs": {"count": float(requests), "rate": s.throughput_rps},
        "iterations": {"count": float(iterations), "rate": s.achieved_rate},
        "dropped_iterations": {"count": float(dropped)},
    }
    for op, lat in s.per_operation.items():
        metric_stats[f"http_req_duration{{op:{op}}}"] = _latency_stats(lat)
        metric_stats[f"payment_{op}_duration"] = _latency_stats(lat)
    for name, expressions in declared.items():
        for expression in expressions:
            stats = metric_stats.get(name, {})
            verdict = th.evaluate(expression, stats)
            s.thresholds.append(ThresholdResult(name, expression, bool(verdict),
                                                th.observed_value(expression, stats)))
    if per_second:
        start = min(per_second)
        for second in range(start, max(per_second) + 1):
            vals = sorted(per_second.get(second, ()))
            s.timeline.append(TimelinePoint(second - start, len(vals), failures_per_second.get(second, 0),
                                            percentile(vals, 50), percentile(vals, 95), percentile(vals, 99)))
    return s


def _latency_stats(lat: Latency) -> dict[str, float | None]:
    return {"avg": lat.avg, "min": lat.min, "med": lat.med, "p(90)": lat.p90, "p(95)": lat.p95,
            "p(99)": lat.p99, "max": lat.max, "count": float(lat.count) if lat.count is not None else None}
