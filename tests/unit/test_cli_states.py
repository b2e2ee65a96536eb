"""The CLI in the states an operator meets: `--version`, numeric options out of bounds, `status`
with no stack, and probe details in words (not exception class names)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import payctl
from payctl.stack import probes
from tests.cli_inprocess import completed


def _payctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return completed(*args, cwd=cwd)


def test_version(tmp_path: Path) -> None:
    result = _payctl("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"payctl {payctl.__version__}"


@pytest.mark.parametrize(("args", "option"), [
    (["logs", "ledger-vm1", "-n", "-5"], "-n"), (["logs", "ledger-vm1", "-n", "0"], "-n"),
    (["reconcile", "--grace", "-1"], "--grace"), (["chaos", "recover", "--timeout", "0"], "--timeout"),
    (["loadtest", "run", "authorize", "--rate", "0"], "--rate"), (["mcp", "serve", "--port", "70000"], "--port"),
])
def test_numeric_options_out_of_bounds_exit_2_naming_the_option(tmp_path: Path, args: list[str],
                                                                option: str) -> None:
    result = _payctl(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    assert f"Invalid value for '{option}'" in out, out


def test_status_without_a_stack_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "stack.toml").write_text('state_dir = "state"\n')
    result = _payctl("status", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not running" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_probe_details_are_words(monkeypatch: pytest.MonkeyPatch) -> None:
    def timed_out(*_a: object, **_k: object) -> None:
        raise TimeoutError("timed out")

    def refused(*_a: object, **_k: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    assert probes.describe(TimeoutError("timed out")) == "not answering (timed out)"
    assert probes.describe(TimeoutError()) == "not answering (timed out)"
    assert probes.describe(ConnectionRefusedError()) == "refusing connections"
    assert "Error" not in probes.describe(OSError(113, "No route to host"))


def test_table_cells_are_text_not_python_reprs() -> None:
    from payctl.cli.output import cell, duration

    assert cell([1, 2, 3]) == "1, 2, 3"
    assert cell({"shard1": 0, "shard2": 0}) == "shard1: 0; shard2: 0"
    assert cell([]) == "-" and cell(None) == ""
    assert cell(16.315161049999983) == "16.3" and cell(0.004321) == "0.00432"
    assert duration(12.3) == "12s" and duration(754) == "12m 34s" and duration(7384) == "2h 03m"
