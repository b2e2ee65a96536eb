"""The shipped k6 scenarios themselves (scenarios/k6), run by the real k6 against a local server
that answers like the ingest or not: what they check, what they record for the report."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from payctl.loadtest.grade import Grade
from payctl.loadtest.report import LoadReport
from payctl.loadtest.session import run_and_analyze
from tests.loadtest.conftest import serve


def _answering(body: bytes) -> type[BaseHTTPRequestHandler]:
    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Answer


def _checks(report: LoadReport) -> dict[str, tuple[int, int]]:
    return {c.name: (c.passes, c.fails) for c in report.checks}


def test_authorize_scenario_records_what_the_report_needs(tmp_path: Path):
    with serve(_answering(b'{"paymentId": 7, "status": "AUTHORIZED"}')) as url:
        session = run_and_analyze("authorize", rate=20, duration="2s", vus=5, base_url=url, raw=False,
                                  reports_root=tmp_path, min_grade=Grade.POOR)
    report = session.report
    checks = _checks(report)
    assert checks["authorize status 200"][1] == 0 and checks["authorize status 200"][0] >= 30
    assert checks["authorize returns AUTHORIZED"] == checks["authorize status 200"]
    assert report.target_rate == 20  # recorded once per VU, read as the gauge's value
    assert "authorize" in report.per_operation  # from the http_req_duration{op:authorize} threshold


def test_a_200_that_is_not_json_fails_the_authorize_check_instead_of_throwing(tmp_path: Path):
    """A gateway that answers 200 with a broken body must fail the scenario's body check; an
    exception in the script would skip both checks and let the run pass."""
    with serve(_answering(b"<html>oops</html>")) as url:
        session = run_and_analyze("authorize", rate=20, duration="2s", vus=5, base_url=url, raw=False,
                                  reports_root=tmp_path, min_grade=Grade.POOR)
    checks = _checks(session.report)
    passes, fails = checks["authorize returns AUTHORIZED"]
    assert passes == 0 and fails >= 30
    assert checks["authorize status 200"][1] == 0
    assert "GoError" not in (session.folder / "k6.log").read_text()
    assert not session.passed


def test_hot_shard_scenario_sends_every_payment_to_odd_merchants(tmp_path: Path):
    """hot-shard: the full flow with all traffic on shard2 (odd merchants), the uneven split."""
    seen: list[str] = []

    class Recording(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            seen.append(str(body.get("merchantId")))
            answer = b'{"paymentId": 7, "status": "AUTHORIZED"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    with serve(Recording) as url:
        run_and_analyze("hot-shard", rate=20, duration="2s", vus=5, base_url=url, raw=False,
                        reports_root=tmp_path, min_grade=Grade.POOR)
    numbers = [int(m.removeprefix("MERCHANT-")) for m in seen]
    assert len(numbers) >= 30
    assert all(n % 2 == 1 for n in numbers), sorted(set(numbers))[:10]
    assert len(set(numbers)) > 5  # spread over the shard's merchants, not one
