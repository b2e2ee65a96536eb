"""Shared fixtures of the MCP tests: a reports folder with one load-test run and one chaos run, fake sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payctl.loadtest import history
from payctl.mcp import tools
from payctl.mcp.tools import ToolContext
from tests.console.fakes import BREAKER_ROWS, FakeBackend, FakeMetrics
from tests.mcp.support import CHAOS_RUN, LOAD_RUN


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    monkeypatch.setattr(tools, "breaker_rows", lambda topo: BREAKER_ROWS)
    run = tmp_path / LOAD_RUN
    run.mkdir()
    (run / "report.md").write_text("# smoke report\n")
    history.append(history.index_path(tmp_path), history.HistoryEntry(
        run=run.name, folder=str(run), scenario="smoke", rate=5, duration_s=5, vus=5, started="2026-01-01T00:00:00",
        grade="GOOD", passed=True))
    chaos = tmp_path / CHAOS_RUN
    chaos.mkdir()
    (chaos / "journal.json").write_text(json.dumps({"experiment": {"title": "Kafka down"}, "status": "completed",
                                                    "start": 1.0, "duration_s": 2.0}))
    return ToolContext(backend=FakeBackend(), reports=tmp_path, metrics=FakeMetrics())
