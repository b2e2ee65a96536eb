"""The compose backend: the same topology as containers (the generated compose.yml + the docker SDK).

`payctl compose render` writes compose.yml and its config files from the topology; `up` refuses
to start from files that are stale for the topology it was given. No Docker engine runs on the
machines this project is developed on, so this backend is exercised by tests against a mocked
docker client only; `payctl up --backend compose` says so loudly when there is no engine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import compose_files, compose_render, mariadb
from payctl.stack.backend import ServiceStatus
from payctl.stack.paths import StatePaths
from payctl.stack.plan import PlannedService, plan_for
from payctl.stack.probes import probe
from payctl.stack.topology import Topology

COMPOSE_FILE = str(compose_render.COMPOSE_FILE)


def compose_file(cwd: Path | None = None) -> Path:
    """compose.yml in the working directory. It builds from the checkout (platform/Dockerfile) and
    mounts its config files, so it is not package data: run the compose backend from the checkout."""
    path = (cwd or Path.cwd()) / COMPOSE_FILE
    if not path.is_file():
        raise EnvironmentProblem(f"the compose backend needs {COMPOSE_FILE} in the working directory ({path.parent})",
                                 "run payctl from the payctl checkout, or `payctl compose render` there")
    return path


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


def container_name(topo: Topology, service: str) -> str:
    return f"{topo.name}-{service}"


class ComposeBackend:
    name = "compose"

    def __init__(self, topo: Topology, client: Any = None) -> None:
        self.topo = topo
        self.plan = plan_for(topo)  # every service is a container of compose.yml (the console included)
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

    def _known(self, name: str) -> PlannedService:
        for svc in self.plan.services:
            if svc.name == name:
                return svc
        raise UsageError(f"unknown service '{name}'")

    def up(self, vm: str | None = None, progress: Callable[[str], None] = lambda _m: None,
           timeout_s: float = 120) -> None:
        self.topo.check_api_auth()  # before anything starts
        _ = self.client  # fail fast without an engine
        file = compose_file()
        check_current(self.topo, file.parent)
        ensure_secrets(self.topo, self.paths)
        wanted = [s.name for s in self.plan.on(vm)]
        progress("docker compose up")
        result = subprocess.run(["docker", "compose", "-f", str(file), "-p", self.topo.name, "up", "-d",
                                 "--wait", *wanted], capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise EnvironmentProblem(f"docker compose up failed: {result.stderr.strip()[-400:]}")

    def down(self, purge: bool = False, progress: Callable[[str], None] = lambda _m: None) -> None:
        progress("docker compose down")
        cmd = ["docker", "compose", "-f", str(compose_file()), "-p", self.topo.name, "down"]
        subprocess.run(cmd + (["-v"] if purge else []), capture_output=True, text=True, timeout=120)

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in self.plan.services:
            try:
                c = self.client.containers.get(container_name(self.topo, svc.name))
                state = str(c.status).upper()
                pid = c.attrs.get("State", {}).get("Pid") or None
            except Exception:
                state, pid = "ABSENT", None
            healthy, detail = probe(svc, self.topo, self.paths) if state == "RUNNING" else (False, state.lower())
            out.append(ServiceStatus(svc.name, svc.kind, svc.vm, svc.port, state, pid, None, healthy, detail))
        return out

    def start(self, name: str, wait: bool = True) -> bool:
        if self._container(name).status == "running":
            return False
        self._container(name).start()
        if wait:
            deadline = time.monotonic() + 60
            svc = self._known(name)
            while time.monotonic() < deadline and not probe(svc, self.topo, self.paths)[0]:
                time.sleep(0.2)
        return True

    def stop(self, name: str) -> bool:
        if self._container(name).status not in ("running", "paused", "restarting"):
            return False
        self._container(name).stop(timeout=10)
        return True

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
