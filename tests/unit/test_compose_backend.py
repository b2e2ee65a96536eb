"""The compose backend against a mocked docker client (no Docker engine runs on these machines)."""

from __future__ import annotations

import stat
from pathlib import Path
from unittest import mock

import pytest

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import compose_files, compose_render
from payctl.stack.compose import ComposeBackend, container_name
from payctl.stack.plan import services
from payctl.stack.topology import Topology


def backend() -> tuple[ComposeBackend, mock.MagicMock]:
    client = mock.MagicMock()
    return ComposeBackend(Topology(), client=client), client


def test_service_actions_map_to_container_calls():
    be, client = backend()
    container = client.containers.get.return_value
    container.status = "running"
    assert be.stop("kafka") is True
    be.pause("kafka")
    be.resume("kafka")
    be.kill("ingest-vm1")
    client.containers.get.assert_any_call("payctl-kafka")
    container.stop.assert_called_once_with(timeout=10)
    container.pause.assert_called_once_with()
    container.unpause.assert_called_once_with()
    container.kill.assert_called_once_with(signal="SIGKILL")


def test_stop_of_a_stopped_container_and_start_of_a_running_one_do_nothing():
    be, client = backend()
    container = client.containers.get.return_value
    container.status = "exited"
    assert be.stop("kafka") is False
    container.stop.assert_not_called()
    container.status = "running"
    assert be.start("kafka", wait=False) is False
    container.start.assert_not_called()


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


def test_the_console_is_a_container_too():
    be, client = backend()
    assert "console" in {s.name for s in services(Topology())}
    be.stop("console")
    client.containers.get.assert_called_with("payctl-console")


def test_up_refuses_files_that_are_stale_for_the_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    compose_files.write(compose_render.render(Topology(), base=tmp_path), tmp_path)
    be = ComposeBackend(Topology().with_port_offset(1000), client=mock.MagicMock())
    with mock.patch("subprocess.run") as run, pytest.raises(EnvironmentProblem, match="do not match this topology"):
        be.up()
    run.assert_not_called()
    assert not (tmp_path / ".payctl").exists()  # nothing created for a stack that will not start


def test_up_creates_the_secrets_and_runs_compose_on_the_generated_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology()
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    be = ComposeBackend(topo, client=mock.MagicMock())
    with mock.patch("subprocess.run") as run:
        run.return_value.returncode = 0
        be.up(vm="vm1")
    cmd = run.call_args.args[0]
    assert cmd[:8] == ["docker", "compose", "-f", str(tmp_path / "compose.yml"), "-p", "payctl", "up", "-d"]
    assert "shard1" in cmd and "ingest-vm1" in cmd and "console" in cmd and "shard2" not in cmd
    secrets = tmp_path / ".payctl" / "secrets"
    for name in ("vm1.password", "vm2.password", "event.key"):
        assert len((secrets / name).read_text().strip()) >= 24
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o644  # readable by the container's user
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
