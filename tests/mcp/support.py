"""Helpers of the MCP tests: the fixture run names and `payctl mcp serve` as a subprocess of this checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.client.stdio import StdioServerParameters

import payctl

LOAD_RUN = "20260101-000000-smoke"
CHAOS_RUN = "chaos-20260101-000100-kafka-outage"
ROOT = Path(payctl.__file__).resolve().parents[1]


def serve_params(config: Path, *flags: str) -> StdioServerParameters:
    """`payctl mcp serve` as a subprocess running this checkout's code: the SDK hands the child only a few
    safe variables, so PYTHONPATH is passed on explicitly (else it imports whichever payctl is installed)."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "platform"), os.environ.get("PYTHONPATH", "")])
    return StdioServerParameters(command=sys.executable, cwd=str(config.parent), env={"PYTHONPATH": path},
                                 args=["-m", "payctl.cli.app", "--config", str(config), "mcp", "serve", *flags])
