"""Read any k6 output: detect the shape from the content, never from the file name.

Shapes: `summary-export` (k6 --summary-export: flat stats, thresholds true = crossed),
`handle-summary` (the data handed to handleSummary: metrics.X.values, thresholds {ok}), and
`raw-ndjson` (k6 --out json, plain or gzip), streamed line by line."""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
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


def _expected(path: Path, place: str, what: str) -> NotK6Output:
    """`FILE: <place>: expected <what>`: place is a JSON path (`metrics.http_reqs.values.count`) or a line."""
    return _problem(path, f"{place}: expected {what}")


def _key(name: object) -> str:
    """A key from the file as a path segment: quoted when it would break the one-line message."""
    text = str(name)
    if not text or not text.isprintable() or len(text) > 80:
        return json.dumps(text[:80])
    return text


def _at(place: str, name: object) -> str:
    return f"{place}[{name}]" if isinstance(name, int) else f"{place}.{_key(name)}" if place else _key(name)


_DAMAGED = (OSError, EOFError, zlib.error)  # a truncated or corrupt gzip stream, a failing disk


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
        except _DAMAGED as exc:
            raise _expected(path, "byte 0", f"readable gzip data ({exc})") from exc
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
        try:
            data = fh.read(MAX_SUMMARY_BYTES + 1)
        except _DAMAGED as exc:
            raise _expected(path, "the whole file", f"readable gzip data ({exc})") from exc
    if len(data) > MAX_SUMMARY_BYTES:
        raise _problem(path, "too large for a k6 summary and not an NDJSON stream")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        what = exc.msg[len("Expecting "):] if exc.msg.startswith("Expecting ") else f"valid JSON ({exc.msg})"
        if exc.pos >= len(data.rstrip()) - 1:
            raise _expected(path, where, f"{what}: truncated JSON, the file ends too early") from exc
        raise _expected(path, where, what) from exc
    except UnicodeDecodeError as exc:
        raise _expected(path, f"byte {exc.start}", "UTF-8 text") from exc
    except RecursionError as exc:
        raise _expected(path, "the whole file", "JSON nested less deeply") from exc


def _parse_summary(path: Path) -> LoadSummary:
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise _expected(path, "top level", "a JSON object (a k6 summary)")
    if not isinstance(doc.get("metrics"), dict):
        raise _expected(path, "metrics", "an object (no 'metrics' object: not a k6 summary)")
    metrics: dict[str, Any] = doc["metrics"]
    if not metrics:
        raise _expected(path, "metrics", "at least one metric (the 'metrics' object is empty)")
    nested = any(isinstance(m, dict) and isinstance(m.get("values"), dict) for m in metrics.values())
    shape = "handle-summary" if nested else "summary-export"
    # Every metric is checked up front, so what follows reads numbers (or None) only.
    stats = {name: _metric_stats(path, name, m, nested) for name, m in metrics.items()}

    def values(name: str) -> dict[str, float | None] | None:
        return stats.get(name)

    s = LoadSummary(source=str(path), shape=shape)
    reqs = values("http_reqs")
    if reqs:
        s.requests = _int(reqs.get("count"))
        s.throughput_rps = reqs.get("rate")
    iters = values("iterations")
    if iters:
        s.iterations = _int(iters.get("count"))
        s.achieved_rate = iters.get("rate")
    duration_ms = _run_duration_ms(path, doc.get("state")) if nested else None
    if duration_ms is not None:
        s.duration_s = duration_ms / 1000
    elif s.requests and s.throughput_rps:
        s.duration_s = s.requests / s.throughput_rps
    dropped = values("dropped_iterations")
    # k6 registers dropped_iterations only when it drops one: absent means none were dropped.
    s.dropped_iterations = _int(dropped.get("count")) if dropped else (0 if s.iterations is not None else None)
    target = values(TARGET_RATE_METRIC)
    if target:
        s.target_rate = target.get("value", target.get("max"))
    failed = values("http_req_failed")
    if failed:
        s.failure_rate = failed.get("rate", failed.get("value"))
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
    s.checks = _checks(path, doc.get("root_group"), "root_group")
    for name, m in metrics.items():
        raw_thresholds = m.get("thresholds")
        if raw_thresholds is None:
            continue
        place = _at(_at("metrics", name), "thresholds")
        if not isinstance(raw_thresholds, dict):
            raise _expected(path, place, "an object of threshold verdicts")
        stat_map = _stat_map(stats[name])
        for expression, verdict in raw_thresholds.items():
            ok = _threshold_ok(path, _at(place, expression), verdict)
            s.thresholds.append(ThresholdResult(name, expression, ok, th.observed_value(expression, stat_map)))
    return s


def _metric_stats(path: Path, name: str, m: Any, nested: bool) -> dict[str, float | None]:
    """One metric's statistics; each must be a finite number (null: absent)."""
    place = _at("metrics", name)
    if not isinstance(m, dict):
        raise _expected(path, place, "an object")
    if nested:
        place = _at(place, "values")
        m = m.get("values")
        if not isinstance(m, dict):
            raise _expected(path, place, "an object of statistics")
    # summary-export keeps the thresholds beside the statistics
    return {k: _number(path, _at(place, k), x) for k, x in m.items() if nested or k != "thresholds"}


def _number(path: Path, place: str, x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise _expected(path, place, "a number")
    return float(x)


def _run_duration_ms(path: Path, state: Any) -> float | None:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise _expected(path, "state", "an object")
    return _number(path, "state.testRunDurationMs", state.get("testRunDurationMs"))


def _threshold_ok(path: Path, place: str, verdict: Any) -> bool:
    """summary-export: true means the threshold was CROSSED; handleSummary: {"ok": bool}."""
    if isinstance(verdict, bool):
        return not verdict
    if isinstance(verdict, dict) and isinstance(verdict.get("ok"), bool):
        return bool(verdict["ok"])
    raise _expected(path, place, 'true, false or {"ok": true|false}')


def _stat_map(v: dict[str, float | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {k: x for k, x in v.items() if x is not None}
    if "value" in out and "rate" not in out:
        out["rate"] = out["value"]
    return out


def _latency(v: dict[str, float | None], count: int | None) -> Latency:
    return Latency(avg=v.get("avg"), min=v.get("min"), med=v.get("med"), p90=v.get("p(90)"), p95=v.get("p(95)"),
                   p99=v.get("p(99)"), max=v.get("max"), count=count)


def _children(path: Path, place: str, items: Any) -> list[tuple[str, Any]]:
    """A list or an object of objects (k6 writes either), as (place, item); null is empty."""
    if items is None:
        return []
    if isinstance(items, list):
        pairs = [(f"{place}[{i}]", item) for i, item in enumerate(items)]
    elif isinstance(items, dict):
        pairs = [(_at(place, k), item) for k, item in items.items()]
    else:
        raise _expected(path, place, "a list or an object")
    for where, item in pairs:
        if not isinstance(item, dict):
            raise _expected(path, where, "an object")
    return pairs


def _checks(path: Path, group: Any, place: str) -> list[CheckResult]:
    if group is None:
        return []
    if not isinstance(group, dict):
        raise _expected(path, place, "an object")
    out: list[CheckResult] = []
    for where, c in _children(path, _at(place, "checks"), group.get("checks")):
        if not isinstance(c.get("name"), str):
            raise _expected(path, _at(where, "name"), "a string")
        counts = [_int(_number(path, _at(where, k), c.get(k, 0))) or 0 for k in ("passes", "fails")]
        out.append(CheckResult(c["name"], counts[0], counts[1]))
    for where, sub in _children(path, _at(place, "groups"), group.get("groups")):
        out.extend(_checks(path, sub, where))
    return out


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)


# -- raw NDJSON -----------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open(path) as fh:
        number = 0
        try:
            for number, line in enumerate(fh, 1):
                yield number, line
        except _DAMAGED as exc:
            raise _expected(path, f"line {number + 1}", f"readable gzip data ({exc})") from exc


_SECOND_CACHE: dict[str, float] = {}
_METRIC_NAME = re.compile(rb'"metric":\s*"([^"]+)"')
_IS_POINT = re.compile(rb'"type":\s*"Point"')
_WANTED = {b"http_req_duration", b"http_reqs", b"http_req_failed", b"iterations", b"dropped_iterations",
           b"checks", b"vus", TARGET_RATE_METRIC.encode()}
# A run's points span seconds to hours; a stray timestamp years away would make a timeline of
# billions of seconds.
MAX_SPAN_S = 31 * 24 * 3600


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


class _Line:
    """One parsed NDJSON line; its accessors name the line and field of a malformed value."""

    def __init__(self, path: Path, number: int, data: dict[str, Any]) -> None:
        self.path, self.number, self.data = path, number, data

    def problem(self, field: str, what: str) -> NotK6Output:
        return _expected(self.path, f"line {self.number}, {field}", what)

    def value(self) -> float:
        x = self.data.get("value")
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise self.problem("data.value", "a number")
        return float(x)

    def time(self) -> float:
        x = self.data.get("time")
        try:
            if isinstance(x, str):
                return _parse_time(x)
        except (ValueError, OverflowError):
            pass
        raise self.problem("data.time", "an RFC 3339 time")

    def tags(self) -> dict[str, Any]:
        tags = self.data.get("tags")
        if tags is None:
            return {}
        if not isinstance(tags, dict):
            raise self.problem("data.tags", "an object")
        return tags


def _item(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except UnicodeDecodeError as exc:
        raise _expected(path, f"line {number}", "UTF-8 JSON (the line holds other bytes)") from exc
    except (ValueError, RecursionError) as exc:
        raise _expected(path, f"line {number}", "a JSON object (the line is not valid JSON: truncated stream?)") \
            from exc
    if not isinstance(item, dict):
        raise _expected(path, f"line {number}", "a JSON object")
    return item


def _declared_thresholds(path: Path, number: int, data: Any) -> tuple[str, list[str]] | None:
    """A Metric line's name and threshold expressions, when it declares any."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise _expected(path, f"line {number}, data", "an object")
    thresholds = data.get("thresholds")
    if not thresholds:
        return None
    if not isinstance(thresholds, list) or not all(isinstance(t, str) for t in thresholds):
        raise _expected(path, f"line {number}, data.thresholds", "a list of strings")
    return str(data.get("name")), thresholds


def _parse_raw(path: Path, apdex_t_ms: float = DEFAULT_T_MS) -> LoadSummary:
    durations = array("d")
    apdex_all = ApdexCounter(apdex_t_ms)
    apdex_op: dict[str, ApdexCounter] = {}
    apdex_trend: dict[str, ApdexCounter] = {}
    per_op: dict[str, array[float]] = defaultdict(lambda: array("d"))
    per_second: dict[int, array[float]] = defaultdict(lambda: array("d"))
    failures_per_second: dict[int, int] = defaultdict(int)
    vus_per_second: dict[int, int] = {}  # k6's gauge, sampled about once a second: the last value wins
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
        item = _item(path, number, line)
        kind = item.get("type")
        if kind == "Metric":
            thresholds = _declared_thresholds(path, number, item.get("data"))
            if thresholds:
                declared[thresholds[0]] = thresholds[1]
            continue
        if kind != "Point":
            continue
        metric = item.get("metric")
        data = item.get("data")
        if not isinstance(data, dict):
            raise _expected(path, f"line {number}, data", "an object")
        point = _Line(path, number, data)
        if metric == "http_req_duration":
            ts = point.time()
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
            if last_ts - first_ts > MAX_SPAN_S:
                raise point.problem("data.time", f"a time within {MAX_SPAN_S // 86400} days of the run's others")
            value = point.value()
            durations.append(value)
            tags = point.tags()
            op = str(tags.get("op", "-"))
            per_op[op].append(value)
            per_second[int(ts)].append(value)
            ok = tags.get("expected_response") != "false"
            apdex_all.add(value, ok)
            apdex_op.setdefault(op, ApdexCounter(apdex_t_ms)).add(value, ok)
        elif metric == "http_reqs":
            requests += int(point.value())
        elif metric == "http_req_failed":
            if point.value():
                failed += 1
                failures_per_second[int(point.time())] += 1
            failed_values += 1
        elif metric == "iterations":
            iterations += int(point.value())
        elif metric == "vus":
            vus_per_second[int(point.time())] = int(point.value())
        elif metric == "dropped_iterations":
            dropped += int(point.value())
        elif metric == TARGET_RATE_METRIC:
            target_rate = point.value()
        elif metric == "checks":
            name = str(point.tags().get("check", "?"))
            counts = checks.setdefault(name, [0, 0])
            counts[0 if point.value() else 1] += 1
        elif isinstance(metric, str) and _OP_TREND.match(metric):
            value = point.value()
            custom_trends[metric].append(value)
            apdex_trend.setdefault(metric, ApdexCounter(apdex_t_ms)).add(value)
    if first_ts is None and requests == 0:
        raise _problem(path, "the stream holds no HTTP request points")
    s = LoadSummary(source=str(path), shape="raw-ndjson", requests=requests)
    if first_ts is not None and last_ts is not None:
        s.started = datetime.fromtimestamp(int(first_ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        # k6 samples the vus gauge about once a second, not inside every second requests fill: a
        # second without its own sample shows the latest before it (or the first after the start)
        before = [k for k in vus_per_second if k <= start]
        vus = vus_per_second[max(before) if before else min(vus_per_second)] if vus_per_second else None
        for second in range(start, max(per_second) + 1):
            vus = vus_per_second.get(second, vus)
            vals = sorted(per_second.get(second, ()))
            s.timeline.append(TimelinePoint(second - start, len(vals), failures_per_second.get(second, 0),
                                            percentile(vals, 50), percentile(vals, 95), percentile(vals, 99),
                                            vus))
    return s


def _latency_stats(lat: Latency) -> dict[str, float | None]:
    return {"avg": lat.avg, "min": lat.min, "med": lat.med, "p(90)": lat.p90, "p(95)": lat.p95,
            "p(99)": lat.p99, "max": lat.max, "count": float(lat.count) if lat.count is not None else None}
