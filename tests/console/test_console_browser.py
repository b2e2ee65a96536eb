"""The console in a real browser (Debian's headless Chromium driven by Playwright), served with fake
sources: the page shows the services and breaker states, a smoke load test started from the page
shows its progress and its report appears in the history. A screenshot goes to the test's folder."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from payctl.console.app import ConsoleSources, create_app
from payctl.console.jobs import JobRunner
from payctl.console.settings import Guard
from tests.console.fakes import BREAKERS, FakeBackend, FakeMetrics, fake_chaos, fake_load

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

CONSOLE_PORT = 18092  # fixed: the console serves only Host names with its own port
OTHER_SITE_PORT = 18093

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")


def serve(sources: ConsoleSources, port: int = CONSOLE_PORT) -> Iterator[str]:
    server = make_server("127.0.0.1", port, create_app(sources, Guard(port=port)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(5)


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
                             breakers=lambda: BREAKERS, scenarios=lambda: ["authorize", "smoke"],
                             experiments=lambda: [{"name": "kafka-outage", "title": "Kafka down", "variables": {}}])
    for url in serve(sources):
        run_smoke_from_the_page(url, tmp_path / "screenshots")
    assert (tmp_path / "screenshots" / "console.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'screenshots' / 'console.png'}")
