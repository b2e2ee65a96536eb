"""The compose backend: the same topology as containers (compose.yml + the docker SDK).

No Docker engine runs on the machines this project is developed on, so this backend is exercised
by tests against a mocked docker client only; `payctl up --backend compose` says so loudly when
there is no engine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.backend import ServiceStatus
from payctl.stack.paths import StatePaths
from payctl.stack.probes import probe
from payctl.stack.topology import ServiceSpec, Topology
from payctl.stack.topology import services as topology_services


def services(topo: Topology, vm: str | None = None) -> list[ServiceSpec]:
    """The topology's services that compose.yml declares (the console runs beside it: `payctl console`)."""
    return [s for s in topology_services(topo, vm) if s.kind != "console"]

COMPOSE_FILE = "compose.yml"


def compose_file(cwd: Path | None = None) -> Path:
    """compose.yml in the working directory. It builds from the checkout (platform/Dockerfile, its
    config and secrets), so it is not package data: run the compose backend from the checkout."""
    path = (cwd or Path.cwd()) / COMPOSE_FILE
    if not path.is_file():
        raise EnvironmentProblem(f"the compose backend needs {COMPOSE_FILE} in the working directory ({path.parent})",
                                 "run payctl from the payctl checkout that holds compose.yml")
    return path


def container_name(topo: Topology, service: str) -> str:
    return f"{topo.name}-{service}"


class ComposeBackend:
    name = "compose"

    def __init__(self, topo: Topology, client: Any = None) -> None:
        self.topo = topo
        self.paths = StatePaths(topo.state_path())
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import docker

                self._client = docker.from_env()
                self._client.ping()
            except Exception as exc:
                raise EnvironmentProblem(
                    f"the compose backend needs a running Docker engine: {exc}",
                    "use the default local backend (`payctl up`) on machines without Docker",
                ) from exc
        return self._client

    def _container(self, name: str) -> Any:
        self._known(name)
        return self.client.containers.get(container_name(self.topo, name))

    def _known(self, name: str) -> ServiceSpec:
        for svc in services(self.topo):
            if svc.name == name:
                return svc
        raise UsageError(f"unknown service '{name}'")

    def up(self, vm: str | None = None, progress: Callable[[str], None] = lambda _m: None,
           timeout_s: float = 120) -> None:
        _ = self.client  # fail fast without an engine
        file = compose_file()
        wanted = [s.name for s in services(self.topo, vm)]
        progress("docker compose up")
        result = subprocess.run(["docker", "compose", "-f", str(file), "-p", self.topo.name, "up", "-d",
                                 "--wait", *wanted], capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise EnvironmentProblem(f"docker compose up failed: {result.stderr.strip()[-400:]}")

    def down(self, purge: bool = False) -> None:
        cmd = ["docker", "compose", "-f", str(compose_file()), "-p", self.topo.name, "down"]
        subprocess.run(cmd + (["-v"] if purge else []), capture_output=True, text=True, timeout=120)

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in services(self.topo):
            try:
                c = self.client.containers.get(container_name(self.topo, svc.name))
                state = str(c.status).upper()
                pid = c.attrs.get("State", {}).get("Pid") or None
            except Exception:
                state, pid = "ABSENT", None
            healthy, detail = probe(svc, self.topo, self.paths) if state == "RUNNING" else (False, state.lower())
            out.append(ServiceStatus(svc.name, svc.kind, svc.vm, svc.port, state, pid, None, healthy, detail))
        return out

    def start(self, name: str, wait: bool = True) -> None:
        self._container(name).start()
        if wait:
            deadline = time.monotonic() + 60
            svc = self._known(name)
            while time.monotonic() < deadline and not probe(svc, self.topo, self.paths)[0]:
                time.sleep(0.2)

    def stop(self, name: str) -> None:
        self._container(name).stop(timeout=10)

    def pause(self, name: str) -> None:
        self._container(name).pause()

    def resume(self, name: str) -> None:
        self._container(name).unpause()

    def kill(self, name: str) -> int:
        self._container(name).kill(signal="SIGKILL")
        return 0

    def log_path(self, name: str) -> Path:
        raise EnvironmentProblem("the compose backend keeps logs in Docker", f"run `docker logs {name}`")

    def log_tail(self, name: str, lines: int = 20) -> str:
        data: bytes = self._container(name).logs(tail=lines)
        return data.decode(errors="replace")

    def is_up(self) -> bool:
        return any(s.state == "RUNNING" for s in self.status())
