"""A history recorder runs as a process of its own beside a workload. If the process that started
it dies without stopping it (killed, crashed), it must not go on: an orphan kept sending requests
with the old stack's keys to whatever listens on that port next, and a new stack's ingest limited
every client of 127.0.0.1 for the failed authentications (429 AUTH_RATE_LIMITED)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "payctl.history.recorder", "http://127.0.0.1:9/api", sys.argv[1],
                          "5"], stdin=subprocess.PIPE)
child.stdin.write(b"{}")
child.stdin.close()
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}/status").exists() else ""
    return "State:\tZ" not in status


def test_a_recorder_whose_starter_died_stops_by_itself(tmp_path: Path) -> None:
    (tmp_path / "history").mkdir()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "history")], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    recorder = int(parent.stdout.readline())
    try:
        time.sleep(1.0)
        assert _alive(recorder)  # recording while its starter lives
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(recorder) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(recorder), "the recorder outlived the process that started it"
    finally:
        parent.kill()
        parent.wait()
        if _alive(recorder):
            os.kill(recorder, signal.SIGKILL)
