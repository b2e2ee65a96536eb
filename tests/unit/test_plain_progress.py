"""Long commands show progress in a log or a pipe too: plain lines (elapsed/total and the rate),
throttled, and `breaker status --watch` prints a line per change instead of a live table."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from payctl.cli import output
from payctl.loadtest.live import LiveProgress


def test_plain_progress_prints_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    clock = iter([0.0, 1.0, 5.5, 6.0, 11.0])
    monkeypatch.setattr(output, "err_console", lambda: output.Console(stderr=True, force_terminal=False))
    plain = output.PlainProgress(enabled=True, every_s=5.0, clock=lambda: next(clock))
    for i in range(5):
        plain.show(LiveProgress(float(i * 5), 30.0, requests=i * 100, rps=20.0).line())
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("0/30s") and "20.0 req/s" in lines[0]
    quiet = output.PlainProgress(enabled=False)
    quiet.show("nothing")
    assert capsys.readouterr().err == ""


def test_breaker_watch_into_a_pipe_prints_plain_lines(tmp_path: Path) -> None:
    (tmp_path / "stack.toml").write_text('state_dir = "state"\n')
    # Ctrl-C's default, whatever this test run inherited (a run started in the background has it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "payctl.cli.app", "breaker", "status", "--watch"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and "relay-vm1" in lines[0] and "relay-vm2" in lines[0], out
    assert "┏" not in out  # no live table drawn into a pipe
