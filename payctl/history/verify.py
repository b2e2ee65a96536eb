"""Check a run folder (I/O shell): read its history, read the final state, run the pure checker,
keep the verdict beside the history as history-check.json."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from payctl.history.check import Verdict, check
from payctl.history.final import read_final
from payctl.history.historyfile import history_path, read_history
from payctl.ops.merchants import client_keys
from payctl.stack.topology import Topology

VERDICT_FILE = "history-check.json"


def auth_headers(topo: Topology, merchants: Iterable[str]) -> dict[str, dict[str, str]]:
    """The workload's merchants' Authorization headers (keys payctl issues for its own clients);
    none when the stack runs with api_auth = "off"."""
    if topo.settings.api_auth == "off":
        return {}
    return {m: {"Authorization": f"Bearer {key}"} for m, key in client_keys(topo, merchants).items()}


def check_run(topo: Topology, folder: Path, headers: Mapping[str, Mapping[str, str]] | None = None) -> Verdict:
    path = history_path(folder)
    header, ops = read_history(path)
    if headers is None:
        headers = auth_headers(topo, {op.merchant for op in ops})
    verdict = check(ops, read_final(topo, header, ops, headers))
    (path.parent / VERDICT_FILE).write_text(json.dumps(verdict.to_json(), indent=2))
    return verdict
