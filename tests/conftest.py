"""Every test sees the width a log or CI has (100 columns): a terminal's $COLUMNS, or the 80 that
pytest-xdist's workers set, must not change what a table shows."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
