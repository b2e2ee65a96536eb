"""`chaos recover` on damaged undo logs: one line `FILE: <place>: expected <what>`, exit 2, nothing
reverted and no traceback (table tests, then a property over a real log with random damage)."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payctl.chaos import recover as recovery
from payctl.chaos.undo import UndoLog
from payctl.errors import PayctlError, UsageError
from tests.chaos.test_engine import FakeDriver
from tests.mutations import damaged_bytes, mutated_document


def real_log(folder: Path) -> Path:
    """A log as a killed run leaves it: two faults recorded, one already reverted."""
    log = UndoLog(run="r1", experiment="x", path=folder / "r1.json", pid=999_999, started=1.0)
    log.record({"type": "pause", "service": "shard2"})
    log.record({"type": "arm_fault", "service": "relay-vm1", "point": "crash-after-publish"})
    log.settled_by({"type": "resume", "service": "shard2"}, "method[2]")
    assert log.path is not None
    return log.path


@functools.cache
def real_log_bytes() -> bytes:
    """One real log's bytes, made once: hypothesis needs the same input on every replay."""
    with tempfile.TemporaryDirectory() as tmp:
        return real_log(Path(tmp)).read_bytes()


def backend_on(state: Path) -> Any:
    """Just enough of a Backend for `recover`: where the state (and so the undo logs) live."""
    return SimpleNamespace(topo=SimpleNamespace(state_path=lambda: state))


def runs_folder(state: Path) -> Path:
    folder = state / "chaos" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def healthy_driver() -> FakeDriver:
    return FakeDriver(probes={"service_healthy": {"shard2": True}})


def test_a_well_formed_log_is_reverted(tmp_path):
    real_log(runs_folder(tmp_path))
    driver = healthy_driver()
    result = recovery.recover(backend_on(tmp_path), driver, timeout_s=1)
    assert result["ok"] and driver.actions == ["disarm_fault:relay-vm1"] and result["problems"] == []


@pytest.mark.parametrize(("change", "place", "expected"), [
    (lambda d: [d], "top level", "a JSON object"),
    (lambda d: {**d, "run": 7}, "run", "a string"),
    (lambda d: {k: v for k, v in d.items() if k != "run"}, "run", "a string"),
    (lambda d: {**d, "pid": "me"}, "pid", "an integer"),
    (lambda d: {**d, "started": [1]}, "started", "a number"),
    (lambda d: {**d, "finished": "later"}, "finished", "a number or null"),
    (lambda d: {**d, "entries": {"a": 1}}, "entries", "a list"),
    (lambda d: {**d, "entries": [3]}, "entries[0]", "an object"),
    (lambda d: {**d, "entries": [{**d["entries"][0], "undo": "resume shard2"}]}, "entries[0].undo", "an object"),
    (lambda d: {**d, "entries": [{**d["entries"][0], "colour": "red"}]}, "entries[0].colour",
     "no such field (fields: seq, fault, undo,"),
    (lambda d: {**d, "entries": [{k: v for k, v in d["entries"][0].items() if k != "fault"}]}, "entries[0].fault",
     "a string"),
    (lambda d: {**d, "entries": [{**d["entries"][0], "status": None}]}, "entries[0].status", "a string"),
])
def test_a_damaged_log_is_named_and_nothing_is_reverted(tmp_path, change, place, expected):
    path = real_log(runs_folder(tmp_path))
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    driver = healthy_driver()
    with pytest.raises(UsageError) as info:
        recovery.recover(backend_on(tmp_path), driver, timeout_s=1)
    assert f"{path}: {place}: expected {expected}" in str(info.value)
    assert "\n" not in str(info.value) and driver.actions == []


@pytest.mark.parametrize(("content", "place", "expected"), [
    (b"{not json", "line 1, column 2", "a JSON object"),
    (b'{"run": "r\xff"}', "byte 10", "UTF-8 text"),
    (b"", "line 1, column 1", "a JSON object"),
])
def test_a_log_that_is_not_json(tmp_path, content, place, expected):
    path = runs_folder(tmp_path) / "junk.json"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        recovery.recover(backend_on(tmp_path), healthy_driver(), timeout_s=1)
    assert f"{path}: {place}: expected {expected}" in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_damage_is_reverted_or_named_in_one_line(tmp_path_factory, data):
    state = tmp_path_factory.mktemp("state")
    path = runs_folder(state) / "r1.json"
    original = real_log_bytes()
    if data.draw(st.booleans()):
        damaged = data.draw(damaged_bytes(original))
    else:
        doc = json.loads(original)
        for _ in range(data.draw(st.integers(1, 3))):
            doc = data.draw(mutated_document(doc))
        damaged = json.dumps(doc).encode()
    path.write_bytes(damaged)
    try:
        result = recovery.recover(backend_on(state), healthy_driver(), timeout_s=0.05)
    except PayctlError as err:
        assert err.exit_code == 2 and str(err).startswith(f"{path}: ") and "\n" not in str(err)
    else:
        assert isinstance(result["ok"], bool)
