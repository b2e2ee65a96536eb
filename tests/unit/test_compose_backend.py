"""The compose backend against a mocked docker client (tests/integration/test_compose_live.py runs it on a
live engine)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import docker.errors
import pytest

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import compose_files, compose_render, owned
from payctl.stack.backend import backend_for
from payctl.stack.compose import ComposeBackend, container_name
from payctl.stack.images import LocalImage
from payctl.stack.local import LocalBackend
from payctl.stack.paths import StatePaths
from payctl.stack.plan import services
from payctl.stack.topology import Topology, load_topology
from tests.cli_inprocess import run_payctl


def backend() -> tuple[ComposeBackend, mock.MagicMock]:
    client = mock.MagicMock()
    return ComposeBackend(Topology(), client=client), client


def test_service_actions_map_to_container_calls():
    be, client = backend()
    container = client.containers.get.return_value
    container.status = "running"
    assert be.stop("kafka") is True
    be.pause("kafka")
    container.status = "paused"
    be.resume("kafka")
    container.status = "running"
    be.kill("ingest-vm1")
    client.containers.get.assert_any_call("payctl-kafka")
    container.stop.assert_called_once_with(timeout=8)  # the plan's stop wait for the broker
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
    client.containers.get.side_effect = docker.errors.NotFound("no such container")
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


class FakeBuilder:
    """Stands in for ImageBuilder: records what `up` asked to build."""

    built: ClassVar[list[list[str]]] = []

    def __init__(self, client: Any, progress: Any) -> None:
        pass

    def ensure(self, images: list[LocalImage]) -> None:
        FakeBuilder.built.append([i.tag for i in images])


def empty_engine() -> mock.MagicMock:
    """A docker client stand-in with no container and no network of ours; FakeBuilder's record reset."""
    client = mock.MagicMock()
    client.containers.list.return_value = []
    client.networks.list.return_value = []
    FakeBuilder.built = []
    return client


def up_with(be: ComposeBackend, **kw: Any) -> mock.MagicMock:
    """`be.up(**kw)` with compose, the waits and the topics stood in for; the subprocess.run mock."""
    with mock.patch("payctl.stack.compose.compose_command", return_value=["docker", "compose"]), \
            mock.patch.object(ComposeBackend, "_wait_healthy"), \
            mock.patch("payctl.stack.compose.wait_gateway_routes"), \
            mock.patch("payctl.stack.compose.create_topics"), \
            mock.patch("payctl.stack.compose.port_free", return_value=True), \
            mock.patch("subprocess.run") as run:
        run.return_value.returncode = 0
        be.up(**kw)
    return run


def test_up_builds_the_images_creates_the_secrets_and_runs_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology()
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    client = empty_engine()
    be = ComposeBackend(topo, client=client, builder=FakeBuilder)
    run = up_with(be, vm="vm1")
    cmd = run.call_args.args[0]
    assert cmd[:9] == ["docker", "compose", "-f", str(tmp_path / "compose.yml"), "-p", "payctl", "up", "-d",
                       "--no-build"]
    assert "vm1" in cmd and "shard1" in cmd and "ingest-vm1" in cmd and "console" in cmd and "shard2" not in cmd
    assert FakeBuilder.built == [["payctl/platform:bookworm", "payctl/mariadb:bookworm", "payctl/tansu:bookworm",
                                  "payctl/haproxy:bookworm", "payctl/prometheus:bookworm"]]
    secrets = tmp_path / ".payctl" / "secrets"
    for name in ("vm1.password", "vm2.password", "event.key"):
        assert len((secrets / name).read_text().strip()) >= 24
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o644  # readable by the container's user
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert (tmp_path / ".payctl" / "faults").is_dir()


def test_up_refuses_a_subnet_another_network_holds_before_anything_starts(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology()
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    client = empty_engine()
    own, other = mock.MagicMock(), mock.MagicMock()
    own.name, own.attrs = "payctl_stack", {"IPAM": {"Config": [{"Subnet": "10.204.0.0/24"}]},
                                           "Labels": {"com.docker.compose.project": "payctl",
                                                      "com.docker.compose.network": "stack"}}
    other.name, other.attrs = "shop_default", {"IPAM": {"Config": [{"Subnet": "10.204.0.0/16"}]}}
    client.networks.list.return_value = [own, other]
    with pytest.raises(EnvironmentProblem, match=r"compose_subnet 10.204.0.0/24 overlaps the Docker network "
                                                 r"shop_default \(10.204.0.0/16\)"):
        up_with(ComposeBackend(topo, client=client, builder=FakeBuilder))
    assert FakeBuilder.built == [] and not (tmp_path / ".payctl" / "secrets").exists()
    client.networks.list.return_value = [own]  # its own network from an earlier up is no clash
    up_with(ComposeBackend(topo, client=client, builder=FakeBuilder))
    assert FakeBuilder.built


def test_a_stack_up_with_compose_stays_compose_until_purged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Its data outlives `down` in compose volumes: `down --purge` must still reach them."""
    monkeypatch.chdir(tmp_path)
    compose_files.write(compose_render.render(Topology(), base=tmp_path), tmp_path)
    client = empty_engine()
    up_with(ComposeBackend(load_topology(), client=client, builder=FakeBuilder))
    assert load_topology().backend == "compose"  # `payctl status` after `payctl up --backend compose`
    assert backend_for(load_topology()).name == "compose"
    ComposeBackend(load_topology(), client=client).down()
    assert load_topology().backend == "compose"
    ComposeBackend(load_topology(), client=client).down(purge=True)
    assert client.volumes.list.called
    assert load_topology().backend == "local"


def test_a_local_stack_takes_the_state_folder_back(tmp_path: Path):
    paths = StatePaths(tmp_path / "state")
    owned.claim(paths.root)
    paths.backend_file.write_text("compose\n")
    LocalBackend(Topology(state_dir=paths.root)).write_files()
    assert not paths.backend_file.exists()


def test_the_upstream_images_build_only_the_platform_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology(compose_images="upstream")
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    client = empty_engine()
    up_with(ComposeBackend(topo, client=client, builder=FakeBuilder))
    assert FakeBuilder.built == [["payctl/platform:bookworm"]]


def test_a_taken_port_stops_up_before_anything_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology()
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    client = empty_engine()
    be = ComposeBackend(topo, client=client, builder=FakeBuilder)
    with mock.patch("payctl.stack.compose.compose_command", return_value=["docker", "compose"]), \
            mock.patch("payctl.stack.compose.port_free", side_effect=lambda port: port != topo.gateway_port), \
            mock.patch("subprocess.run") as run, \
            pytest.raises(EnvironmentProblem, match=f"port {topo.gateway_port} needed by gateway is already in use"):
        be.up()
    run.assert_not_called()
    assert FakeBuilder.built == []


def test_a_failed_compose_up_is_one_line_and_removes_what_it_created(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    topo = Topology()
    compose_files.write(compose_render.render(topo, base=tmp_path), tmp_path)
    client = mock.MagicMock()
    leftover = mock.MagicMock(status="exited")
    client.containers.list.side_effect = [[], [], [leftover]]  # port check, is_up, removal
    client.networks.list.return_value = []
    be = ComposeBackend(topo, client=client, builder=FakeBuilder)
    stderr = (" Container payctl-vm1  Creating\n"
              "Error response from daemon: Pool overlaps with other one on this address space\n")
    with mock.patch("payctl.stack.compose.compose_command", return_value=["docker", "compose"]), \
            mock.patch("payctl.stack.compose.port_free", return_value=True), \
            mock.patch("subprocess.run") as run, pytest.raises(EnvironmentProblem) as err:
        run.return_value.returncode = 1
        run.return_value.stderr = stderr
        be.up()
    assert err.value.message == ("docker compose up failed: Error response from daemon: Pool overlaps with other "
                                 "one on this address space")
    leftover.remove.assert_called_once_with(force=True)
    assert load_topology().backend == "local"


def container(service: str, status: str = "running", pid: int = 42) -> mock.MagicMock:
    c = mock.MagicMock(status=status, labels={"com.docker.compose.service": service})
    c.name = f"payctl-{service}"
    c.attrs = {"State": {"Status": status, "Pid": pid, "StartedAt": "2026-12-02T19:00:00.123456789Z"}}
    return c


def test_down_stops_group_by_group_then_removes_containers_network_and_with_purge_volumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    names = [s.name for s in services(Topology())] + ["vm1", "vm2", "schema"]
    running = {n: container(n) for n in names}
    client = mock.MagicMock()
    client.containers.list.return_value = list(running.values())
    network, volume = mock.MagicMock(), mock.MagicMock()
    client.networks.list.return_value = [network]
    client.volumes.list.return_value = [volume]
    said: list[str] = []
    topo = Topology(state_dir=tmp_path / "state")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / ".payctl-state").write_text("x")
    ComposeBackend(topo, client=client).down(purge=True, progress=said.append)
    assert said[0] == "stopped schema" and said[1].startswith("stopped gateway")
    assert said[-3] == "stopped shard1, shard2, VM holders"
    assert said[-2:] == ["containers and network removed, volumes too", "state folder deleted"]
    assert all(c.remove.called for c in running.values())
    network.remove.assert_called_once_with()
    volume.remove.assert_called_once_with(force=True)
    assert not (tmp_path / "state").exists()
    assert client.volumes.list.call_args.kwargs == {"filters": {"label": "com.docker.compose.project=payctl"}}


def test_status_shows_a_paused_container_as_paused_and_unhealthy():
    be, client = backend()
    client.containers.get.side_effect = lambda name: container(name.removeprefix("payctl-"),
                                                               "paused" if name == "payctl-kafka" else "exited")
    rows = {r.name: r for r in be.status()}
    assert rows["kafka"].state == "PAUSED" and not rows["kafka"].healthy and rows["kafka"].pid == 42
    assert rows["shard1"].state == "EXITED" and rows["shard1"].pid is None


def test_pause_or_kill_of_a_stopped_service_is_refused_with_a_hint():
    be, client = backend()
    client.containers.get.return_value = container("relay-vm1", "exited")
    with pytest.raises(UsageError, match="cannot pause relay-vm1: it is exited"):
        be.pause("relay-vm1")
    with pytest.raises(UsageError, match="cannot kill relay-vm1"):
        be.kill("relay-vm1")


def test_kill_sends_sigkill_then_starts_the_container_again():
    """`docker kill` disables a container's restart policy until it is started again: payctl starts
    it, as the local backend's supervisor restarts a killed process."""
    be, client = backend()
    c = container("ingest-vm1", pid=4242)
    client.containers.get.return_value = c
    assert be.kill("ingest-vm1") == 4242
    assert [call[0] for call in c.method_calls if call[0] in ("kill", "wait", "start")] == ["kill", "wait", "start"]
    c.kill.assert_called_once_with(signal="SIGKILL")


def test_logs_come_from_the_container():
    be, client = backend()
    c = container("gateway")
    c.logs.return_value = b"one\ntwo\n"
    client.containers.get.return_value = c
    assert list(be.log_lines("gateway", lines=2)) == ["one\n", "two\n"]
    c.logs.assert_called_once_with(tail=2)


def test_up_without_an_engine_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    compose_files.write(compose_render.render(Topology(), base=tmp_path), tmp_path)
    with mock.patch("docker.from_env", side_effect=docker.errors.DockerException(
            "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, "
            "'No such file or directory'))")):
        result = run_payctl("up", "--backend", "compose")
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the compose backend needs a running Docker engine"), lines
    assert not (tmp_path / ".payctl").exists()
