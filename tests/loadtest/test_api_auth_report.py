"""A load-test report of a stack without authentication says so on a line of its own."""

from __future__ import annotations

from payctl.loadtest import render
from payctl.loadtest.analyze import analyze_file


def test_a_report_of_a_run_without_authentication_says_so(k6_outputs):
    report = analyze_file(k6_outputs.summary_export)
    on, off = (report.model_copy(update={"api_auth": a}) for a in ("on", "off"))
    assert render.AUTH_OFF not in render.to_markdown(on)
    assert f"**{render.AUTH_OFF}**" in render.to_markdown(off).splitlines()
    assert render.AUTH_OFF in render.to_html(off)
    assert off.as_json()["api_auth"] == "off" and "api_auth" not in report.as_json()
