"""The compose backend against a mocked docker client (no Docker engine runs on these machines)."""

from __future__ import annotations

from unittest import mock

import pytest

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.compose import ComposeBackend, container_name
from payctl.stack.topology import Topology


def backend() -> tuple[ComposeBackend, mock.MagicMock]:
    client = mock.MagicMock()
    return ComposeBackend(Topology(), client=client), client


def test_service_actions_map_to_container_calls():
    be, client = backend()
    container = client.containers.get.return_value
    be.stop("kafka")
    be.pause("kafka")
    be.resume("kafka")
    be.kill("ingest-vm1")
    client.containers.get.assert_any_call("payctl-kafka")
    container.stop.assert_called_once_with(timeout=10)
    container.pause.assert_called_once_with()
    container.unpause.assert_called_once_with()
    container.kill.assert_called_once_with(signal="SIGKILL")


def test_unknown_service_is_a_usage_error():
    be, _ = backend()
    with pytest.raises(UsageError, match="unknown service 'nope'"):
        be.stop("nope")


def test_status_reports_absent_containers():
    be, client = backend()
    client.containers.get.side_effect = Exception("no such container")
    rows = be.status()
    assert {r.state for r in rows} == {"ABSENT"} and not any(r.healthy for r in rows)


def test_without_an_engine_the_error_says_so():
    be = ComposeBackend(Topology())
    with mock.patch("docker.from_env", side_effect=Exception("Cannot connect to the Docker daemon")), \
            pytest.raises(EnvironmentProblem, match="needs a running Docker engine"):
        be.stop("kafka")


def test_container_names_follow_the_topology_name():
    assert container_name(Topology(name="pay"), "shard1") == "pay-shard1"
