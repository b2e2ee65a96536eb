"""Where everything of one stack lives under its state folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.root / "supervisor.sock"

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

    def db_socket(self, vm: str) -> Path:
        return self.mariadb_dir(vm) / "mariadb.sock"

    def service_config(self, vm: str) -> Path:
        return self.root / vm / "payflow.json"

    def prom_multiproc(self, vm: str) -> Path:
        return self.root / vm / "prometheus-multiproc"
