"""What the console is started with: where its stack's files are, which Host names and which token it
accepts, and the bounds it puts on jobs.

Every path comes ABSOLUTE from the environment payctl renders into the console's supervisord program
(payctl.stack.render): the console runs with its working directory inside the state folder, so a
relative `state_dir` read from topology.json (".payctl" by default) would point at ".payctl/.payctl".

Settings (environment, each optional):
  PAYCTL_CONSOLE_MAX_RATE        highest load rate a job may ask for, requests/s (default 1000)
  PAYCTL_CONSOLE_MAX_DURATION_S  longest load duration, and longest run of any job, seconds (default 1800)
  PAYCTL_CONSOLE_QUEUE           jobs that may wait behind the running one (default 5)

Control token: a console bound to a loopback address answers control actions (POST) without a token;
bound beyond loopback (a shared host address, or a network namespace's address) it requires
`Authorization: Bearer <token>`, the token being <state folder>/secrets/console.token (0600, made on
first start). The page never embeds it: the user pastes it (`payctl console --token` prints it)."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payctl.errors import UsageError
from payctl.stack.topology import Topology

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class ConsoleLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_rate: int = Field(default=1000, ge=1, le=2000)
    max_duration_s: int = Field(default=1800, ge=10, le=24 * 3600)
    queue: int = Field(default=5, ge=0, le=50)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ConsoleLimits:
        names = {"max_rate": "PAYCTL_CONSOLE_MAX_RATE", "max_duration_s": "PAYCTL_CONSOLE_MAX_DURATION_S",
                 "queue": "PAYCTL_CONSOLE_QUEUE"}
        given = {key: environ[var] for key, var in names.items() if environ.get(var)}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise UsageError(f"{names[str(err['loc'][0])]}: {err['msg']}") from None


@dataclass(frozen=True)
class Guard:
    """Which requests the console answers: Host names (each with the console's port), and the token
    control actions need (None: none needed)."""

    port: int
    hosts: tuple[str, ...] = ()
    token: str | None = None

    @property
    def allowed_hosts(self) -> frozenset[str]:
        names = {*LOOPBACK_NAMES, *(_host_name(h) for h in self.hosts)}
        return frozenset(f"{n}:{self.port}".lower() for n in names)

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(f"http://{h}" for h in self.allowed_hosts)


def _host_name(host: str) -> str:
    """How a host appears in a Host header: IPv6 literals in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host.strip("[]")).version == 6 else host
    except ValueError:
        return host


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_file(state_dir: Path) -> Path:
    return state_dir / "secrets" / "console.token"


def ensure_token(path: Path) -> str:
    """The stack's console token, made (0600, never world-readable even for an instant) if missing."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another console process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


@dataclass(frozen=True)
class ConsoleEnv:
    topology: Topology  # state_dir absolute
    topology_file: Path
    state_dir: Path
    reports: Path

    @property
    def bind_host(self) -> str:
        return self.topology.shared_address

    def guard(self) -> Guard:
        topo = self.topology
        hosts = tuple(dict.fromkeys([topo.console_host, topo.shared_address]))
        token = None if is_loopback(self.bind_host) else ensure_token(token_file(self.state_dir))
        return Guard(port=topo.console_port, hosts=hosts, token=token)

    def environ(self) -> dict[str, str]:
        """The variables that give a process started by the console the same files (all absolute)."""
        return {"PAYCTL_CONSOLE_TOPOLOGY": str(self.topology_file),
                "PAYCTL_CONSOLE_STATE_DIR": str(self.state_dir), "PAYCTL_CONSOLE_REPORTS": str(self.reports)}


def console_env(environ: Mapping[str, str] = os.environ) -> ConsoleEnv:
    """The console's stack, as payctl rendered it: PAYCTL_CONSOLE_TOPOLOGY (topology.json),
    PAYCTL_CONSOLE_STATE_DIR (the state folder) and PAYCTL_CONSOLE_REPORTS, all absolute. Without
    PAYCTL_CONSOLE_STATE_DIR a relative state_dir is the folder holding topology.json (it is written
    into the state folder); relative paths are refused, never resolved against the working directory."""
    topo_file = Path(environ["PAYCTL_CONSOLE_TOPOLOGY"])
    if not topo_file.is_absolute():
        raise UsageError(f"PAYCTL_CONSOLE_TOPOLOGY: '{topo_file}' is not an absolute path")
    topo = Topology.model_validate(json.loads(topo_file.read_text()))
    given = environ.get("PAYCTL_CONSOLE_STATE_DIR")
    if given:
        state_dir = Path(given)
        if not state_dir.is_absolute():
            raise UsageError(f"PAYCTL_CONSOLE_STATE_DIR: '{given}' is not an absolute path")
    else:
        state_dir = topo.state_dir if topo.state_dir.is_absolute() else topo_file.parent
    reports = Path(environ.get("PAYCTL_CONSOLE_REPORTS") or state_dir.parent / "reports")
    if not reports.is_absolute():
        raise UsageError(f"PAYCTL_CONSOLE_REPORTS: '{reports}' is not an absolute path")
    return ConsoleEnv(topo.model_copy(update={"state_dir": state_dir}), topo_file, state_dir, reports)
