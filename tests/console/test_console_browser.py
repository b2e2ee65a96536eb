"""The console in a real browser (Debian's headless Chromium driven by Playwright), served with fake
sources: the page shows the services and breaker states, a smoke load test started from the page
shows its progress and its report appears in the history; a long job started from the page can be
cancelled there, and one started behind it waits in the queue. A page of another site (a second
server, and a DNS name resolving to 127.0.0.1 as a rebinding attack would) cannot start a job.
A screenshot goes to the test's folder."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from payctl.console.app import ConsoleSources, create_app
from payctl.console.jobs import JobRunner
from payctl.console.settings import Guard
from tests.browser import BROWSER
from tests.console.fakes import BREAKER_ROWS, FakeBackend, FakeMetrics, fake_chaos, fake_load, load_until_cancelled

CHROMIUM = BROWSER
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

CONSOLE_PORT = 18092  # fixed: the console serves only Host names with its own port
OTHER_SITE_PORT = 18093

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")


def serve(sources: ConsoleSources, port: int = CONSOLE_PORT,
          seen: list[tuple[str, str, int]] | None = None) -> Iterator[str]:
    """The console on 127.0.0.1:`port`; `seen` collects (method, path, status) of every request."""
    app: Any = create_app(sources, Guard(port=port))
    if seen is not None:
        app = recording(app, seen)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(5)


def recording(app: Any, seen: list[tuple[str, str, int]]) -> Callable[..., Iterable[bytes]]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: Any, *exc: Any) -> Any:
            seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], int(status.split()[0])))
            return start_response(status, headers, *exc)

        return app(environ, start)  # type: ignore[no-any-return]

    return wsgi


def run_smoke_from_the_page(url: str, shots: Path) -> None:
    """Shared with the live test: open the page, check it, start a short smoke load, see its report."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            expect(page.locator('#services tr[data-service="ingest-vm1"]')).to_be_visible(timeout=15_000)
            expect(page.locator('#services tr[data-service="console"]')).to_be_visible()
            expect(page.locator('.breaker[data-relay="relay-vm1"]')).to_contain_text("CLOSED")
            page.select_option("#load-scenario", "smoke")
            page.fill('input[name="rate"]', "5")
            page.fill('input[name="duration"]', "5s")
            page.click("#run-load")
            expect(page.locator('.job[data-status="running"], .job[data-status="passed"]').first).to_be_visible(
                timeout=10_000)
            # a finished job (a real k6 run may grade below the bar; its report appears all the same)
            expect(page.locator('.job[data-status="passed"], .job[data-status="failed"]').first).to_be_visible(
                timeout=120_000)
            link = page.locator('#runs tr td a:text("report")').first
            expect(link).to_be_visible(timeout=15_000)
            href = link.get_attribute("href")
            assert href and href.endswith("/report.html")
            report = browser.new_page()
            report.goto(url.rstrip("/") + href)
            expect(report.locator("body")).to_contain_text("smoke")
            # the newest load run's charts over time, drawn by default
            expect(page.locator("#run-charts .chart svg polyline").first).to_be_visible(timeout=15_000)
            assert page.locator("#run-charts .chart").count() == 4
            page.wait_for_timeout(500)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "console.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()


def test_console_in_headless_chromium(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    sources = ConsoleSources(backend=FakeBackend(), metrics=FakeMetrics(), reports=reports,
                             jobs=JobRunner(fake_load(reports, 1.5), fake_chaos(reports)),
                             breakers=lambda: BREAKER_ROWS, scenarios=lambda: ["authorize", "smoke"],
                             experiments=lambda: [{"name": "kafka-outage", "title": "Kafka down", "variables": {}}])
    for url in serve(sources):
        run_smoke_from_the_page(url, tmp_path / "screenshots")
    assert (tmp_path / "screenshots" / "console.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'screenshots' / 'console.png'}")


def fake_sources(reports: Path, load: Any) -> ConsoleSources:
    return ConsoleSources(backend=FakeBackend(), metrics=FakeMetrics(), reports=reports,
                          jobs=JobRunner(load, fake_chaos(reports)), breakers=lambda: BREAKER_ROWS,
                          scenarios=lambda: ["authorize", "smoke"],
                          experiments=lambda: [{"name": "kafka-outage", "title": "Kafka down", "variables": {}}])


def test_a_job_is_queued_and_cancelled_from_the_page(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    sources = fake_sources(tmp_path, load_until_cancelled(limit_s=60))
    errors: list[str] = []
    for url in serve(sources):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url)
                expect(page.locator("#limits")).to_contain_text("at most 1000/s")
                page.select_option("#load-scenario", "smoke")
                page.fill('input[name="duration"]', "10m")
                page.click("#run-load")
                running = page.locator('.job[data-job="job-1"][data-status="running"]')
                expect(running).to_be_visible(timeout=10_000)
                page.click("#run-load")  # a second job waits behind the first
                expect(page.locator('#queue li[data-queued="job-2"]')).to_be_visible(timeout=10_000)
                expect(page.locator("#queue-count")).to_have_text("1 / 5")
                page.click('#queue button[data-cancel="job-2"]')
                expect(page.locator('.job[data-job="job-2"][data-status="cancelled"]')).to_be_visible(timeout=10_000)
                page.click('.job[data-job="job-1"] button[data-cancel="job-1"]')
                expect(page.locator('.job[data-job="job-1"][data-status="cancelled"]')).to_be_visible(timeout=10_000)
                expect(page.locator("#queue-count")).to_have_text("0 / 5")
                page.fill('input[name="rate"]', "5000")  # above the limit: the server names the field
                page.evaluate("document.querySelector('input[name=rate]').removeAttribute('max')")
                page.click("#run-load")
                expect(page.locator("#form-error")).to_contain_text("rate:")
                page.screenshot(path=str(tmp_path / "console-cancel.png"), full_page=True)
                assert errors == [], errors
            finally:
                browser.close()
    assert [(j["id"], j["status"]) for j in sources.jobs.jobs()] == [("job-2", "cancelled"), ("job-1", "cancelled")]


ATTACK_PAGE = """<!doctype html><html><body><p id="done"></p>
<form id="form" method="POST" action="{console}api/jobs" enctype="text/plain">
<input name='{{"kind": "load", "scenario": "smoke", "rate": 1000, "duration": "30m", "x": "' value='"}}'></form>
<script>
const body = JSON.stringify({{kind: "load", scenario: "smoke", rate: 1000, duration: "30m"}});
async function attempt(opts) {{
  try {{ return "status " + (await fetch("{console}api/jobs", opts)).status; }}
  catch (err) {{ return "blocked: " + err.message; }}
}}
(async () => {{
  const out = {{
    json: await attempt({{method: "POST", headers: {{"content-type": "application/json"}}, body}}),
    plain: await attempt({{method: "POST", headers: {{"content-type": "text/plain"}}, body}}),
    no_cors: await attempt({{method: "POST", mode: "no-cors", body}}),
  }};
  document.getElementById("done").textContent = JSON.stringify(out);
}})();
</script></body></html>
"""


def test_another_site_cannot_start_a_job(tmp_path: Path) -> None:
    """A page of another origin POSTs to the console with fetch (JSON, a preflight-free text/plain,
    no-cors) and with a form; then the browser visits the console under a name that resolves to
    127.0.0.1 (DNS rebinding). The console refuses each request itself, and no job starts."""
    from playwright.sync_api import expect, sync_playwright

    sources = fake_sources(tmp_path, load_until_cancelled())
    site = tmp_path / "site"
    site.mkdir()
    console_url = f"http://127.0.0.1:{CONSOLE_PORT}/"
    (site / "index.html").write_text(ATTACK_PAGE.format(console=console_url))
    other = ThreadingHTTPServer(("127.0.0.1", OTHER_SITE_PORT),
                                functools.partial(SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    seen: list[tuple[str, str, int]] = []
    try:
        for _url in serve(sources, seen=seen):
            with sync_playwright() as pw:
                args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.test 127.0.0.1"]
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
                try:
                    page = browser.new_page()
                    page.goto(f"http://attacker.test:{OTHER_SITE_PORT}/index.html")
                    expect(page.locator("#done")).not_to_be_empty(timeout=15_000)
                    outcome = json.loads(page.locator("#done").text_content() or "{}")
                    assert not any(v == "status 202" for v in outcome.values()), outcome
                    with page.expect_navigation():
                        page.evaluate("document.getElementById('form').submit()")
                    assert "origin" in (page.locator("body").text_content() or "")
                    rebound = page.goto(f"http://attacker.test:{CONSOLE_PORT}/")
                    assert rebound is not None and rebound.status == 421
                    rebound_post = page.evaluate("""async () => (await fetch("/api/jobs", {method: "POST",
                        headers: {"content-type": "application/json"},
                        body: JSON.stringify({kind: "load", scenario: "smoke"})})).status""")
                    assert rebound_post == 421
                finally:
                    browser.close()
    finally:
        other.shutdown()
        other.server_close()
    posts = [status for method, path, status in seen if method == "POST"]
    assert posts and all(status in (403, 415, 421) for status in posts), seen
    assert sources.jobs.jobs() == []
