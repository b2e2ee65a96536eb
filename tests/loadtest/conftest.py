"""k6 fixtures made by the real k6 binary against a local HTTP server, once per session."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from payctl.stack.binaries import Binaries

SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';
import { Gauge, Trend } from 'k6/metrics';
const target = new Gauge('scenario_target_rate');
const authorizeTrend = new Trend('payment_authorize_duration', true);
export const options = {
  scenarios: { load: { executor: 'constant-arrival-rate', rate: 40, timeUnit: '1s', duration: '3s',
                       preAllocatedVUs: 10, maxVUs: 20 } },
  thresholds: { http_req_failed: ['rate<0.5'], 'http_req_duration{op:authorize}': ['p(95)<1000'],
                checks: ['rate>0.99'] },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
};
export default function () {
  target.add(40);
  const r = http.post(`${__ENV.BASE}/authorize`, '{}', { tags: { op: 'authorize' } });
  authorizeTrend.add(r.timings.duration);
  check(r, { 'authorize status 200': (x) => x.status === 200 });
  const g = http.get(`${__ENV.BASE}/get`, { tags: { op: 'get' } });
  check(g, { 'get status 200': (x) => x.status === 200 });
}
export function handleSummary(data) {
  return { [__ENV.SUMMARY_JSON]: JSON.stringify(data) };
}
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    conflict_share = 0.1

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(random.uniform(0.001, 0.02))
        # One request in ten conflicts: a 409 must count as a failed check, not a pass.
        status = 409 if random.random() < self.conflict_share else 200
        body = b'{"ok":true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:
        return


class HealthyHandler(Handler):
    """Always answers 200: a run against it passes every check."""

    conflict_share = 0.0


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler] = Handler) -> Iterator[str]:
    """A local HTTP server for k6 to load; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class K6Outputs:
    summary_export: Path
    handle_summary: Path
    raw: Path
    raw_gz: Path
    stdout: str


@pytest.fixture(scope="session")
def k6_outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K6Outputs]:
    folder = tmp_path_factory.mktemp("k6")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = folder / "script.js"
    script.write_text(SCRIPT)
    k6 = Binaries.discover().require("k6")
    out = K6Outputs(folder / "export.json", folder / "handle.json", folder / "raw.ndjson", folder / "raw.ndjson.gz", "")
    result = subprocess.run(
        [k6, "run", "--summary-export", str(out.summary_export), "--out", f"json={out.raw}",
         "--out", f"json={out.raw_gz}", "--env", f"BASE=http://127.0.0.1:{server.server_port}",
         "--env", f"SUMMARY_JSON={out.handle_summary}", str(script)],
        capture_output=True, text=True, timeout=120, cwd=folder,
    )
    server.shutdown()
    assert result.returncode in (0, 99), result.stderr[-2000:]
    yield K6Outputs(out.summary_export, out.handle_summary, out.raw, out.raw_gz, result.stdout)


@pytest.fixture(scope="session")
def export_doc(k6_outputs: K6Outputs) -> dict:
    return json.loads(k6_outputs.summary_export.read_text())
