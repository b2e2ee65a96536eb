"""Where everything of one stack lives under its state folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from payctl.errors import UsageError

# Linux's sockaddr_un holds 108 bytes with the closing NUL: a socket path longer than this cannot
# be bound, so supervisord and mariadbd would fail in a deep checkout.
SUN_PATH_MAX = 107
# The longest socket file name used below the short folder ("<vm>.mariadb.sock"), with room for
# a long VM name.
_LONGEST_SHORT_NAME = 32


@dataclass(frozen=True)
class StatePaths:
    root: Path
    # Where sockets go when the state folder is too deep for them: <socket_base>/payctl-<uid>/<hash>
    socket_base: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def socket_dir(self) -> Path | None:
        """The short private folder for this stack's sockets, or None when they fit in the state
        folder. Derived from the state folder alone, so every process of the stack agrees."""
        if len(bytes(self.db_socket_in_state("x" * 16))) <= SUN_PATH_MAX and \
                len(bytes(self.root / "supervisor.sock")) <= SUN_PATH_MAX:
            return None
        digest = hashlib.sha256(bytes(self.root.absolute())).hexdigest()[:16]
        short = self.socket_base / f"payctl-{os.getuid()}" / digest
        if len(bytes(short)) + 1 + _LONGEST_SHORT_NAME > SUN_PATH_MAX:
            raise UsageError(f"the temporary folder {self.socket_base} is too deep for Unix sockets",
                             "set TMPDIR to a short folder such as /tmp")
        return short

    def make_socket_dir(self) -> None:
        """Make the short socket folder (mode 0700, in a per-user parent of mode 0700); refused
        when that parent is a symbolic link, someone else's, or open to others."""
        short = self.socket_dir
        if short is None:
            return
        parent = short.parent
        try:
            parent.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = parent.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise UsageError(f"{parent} is a symbolic link; payctl keeps its sockets only in a folder of its own",
                             f"remove {parent} and run the command again")
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
            raise UsageError(f"{parent} belongs to uid {info.st_uid} with mode {oct(stat.S_IMODE(info.st_mode))}; "
                             "payctl's socket folder must be yours with mode 0o700",
                             f"remove {parent} and run the command again")
        short.mkdir(mode=0o700, exist_ok=True)

    def remove_socket_dir(self) -> None:
        """Delete the short socket folder this stack made (its per-user parent stays)."""
        short = self.socket_dir
        if short is not None and short.is_dir() and not short.is_symlink():
            shutil.rmtree(short)

    @property
    def supervisor_sock(self) -> Path:
        short = self.socket_dir
        return (short or self.root) / "supervisor.sock"

    @property
    def supervisord_pid(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    @property
    def haproxy_cfg(self) -> Path:
        return self.root / "gateway" / "haproxy.cfg"

    @property
    def prometheus_yml(self) -> Path:
        return self.root / "prometheus" / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus" / "data"

    @property
    def topology_json(self) -> Path:
        return self.root / "topology.json"

    @property
    def isolation_file(self) -> Path:
        """How the running stack was started ("none"/"netns"); removed by `down`."""
        return self.root / "isolation"

    @property
    def backend_file(self) -> Path:
        """The backend a running stack was started with when not the topology's own (`up --backend
        compose`); removed by `down`."""
        return self.root / "backend"

    def running_isolation(self) -> str | None:
        try:
            return self.isolation_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def reports(self) -> Path:
        """Where the console keeps its runs: `reports/` beside the state folder (the CLI's default
        when it runs from the folder that holds `.payctl/`)."""
        return self.root.parent / "reports"

    def password_file(self, vm: str) -> Path:
        return self.root / "secrets" / f"{vm}.password"

    @property
    def fault_dir(self) -> Path:
        """Chaos experiments arm fault hooks here: <fault_dir>/<service>/<point>."""
        return self.root / "faults"

    @property
    def chaos_runs(self) -> Path:
        """One undo log per chaos run that may have left a fault behind (payctl.chaos.undo)."""
        return self.root / "chaos" / "runs"

    @property
    def event_secret_file(self) -> Path:
        """The stack's HMAC key for events (shared by every relay and consumer)."""
        return self.root / "secrets" / "event.key"

    @property
    def client_keys_file(self) -> Path:
        """API keys payctl issued for its own clients (load tests, demo, smoke): never in a report."""
        return self.root / "secrets" / "client-keys.json"

    def mariadb_dir(self, vm: str) -> Path:
        return self.root / vm / "mariadb"

    def datadir(self, vm: str) -> Path:
        return self.mariadb_dir(vm) / "data"

    def my_cnf(self, vm: str) -> Path:
        return self.mariadb_dir(vm) / "my.cnf"

    def db_socket_in_state(self, vm: str) -> Path:
        return self.mariadb_dir(vm) / "mariadb.sock"

    def db_socket(self, vm: str) -> Path:
        short = self.socket_dir
        return short / f"{vm}.mariadb.sock" if short else self.db_socket_in_state(vm)

    def service_config(self, vm: str) -> Path:
        return self.root / vm / "payflow.json"

    def prom_multiproc(self, vm: str) -> Path:
        return self.root / vm / "prometheus-multiproc"
