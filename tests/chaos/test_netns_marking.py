"""Experiments that inject network faults run only on a netns stack: `chaos list` marks them and a
dry run on a plain stack says it cannot run here (exit 2) instead of calling it valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from payctl.chaos import runner

NETWORK = {"partition-vm2-broker", "partition-shard2"}


def _payctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payctl.cli.app", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_list_marks_the_network_experiments() -> None:
    marked = {e["name"] for e in runner.list_experiments() if e["needs_netns"]}
    assert marked >= NETWORK
    assert "kafka-outage" not in marked


def test_a_dry_run_of_a_network_experiment_on_a_plain_stack_exits_2(tmp_path: Path) -> None:
    name = sorted(NETWORK & {e["name"] for e in runner.list_experiments()})[0]
    result = _payctl("chaos", "run", name, "--dry-run", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--isolation netns" in result.stderr and "Traceback" not in result.stderr
    plain = _payctl("chaos", "run", "kafka-outage", "--dry-run", "--json", cwd=tmp_path)
    assert plain.returncode == 0 and json.loads(plain.stdout)["experiment"] == "kafka-outage"
