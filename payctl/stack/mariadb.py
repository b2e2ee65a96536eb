"""MariaDB shards of the local backend: initialise a datadir, create the app user and database."""

from __future__ import annotations

import getpass
import os
import secrets
import subprocess
from pathlib import Path

from payctl.errors import EnvironmentProblem
from payctl.stack.paths import StatePaths
from payctl.stack.shards import root_connect


def ensure_password(path: Path) -> str:
    """A per-stack password, generated once, readable by the owner only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def init_datadir(install_db: str, paths: StatePaths, vm: str) -> bool:
    """Run mariadb-install-db once; returns True when it initialised a new datadir."""
    datadir = paths.datadir(vm)
    if (datadir / "mysql").is_dir():
        return False
    datadir.mkdir(parents=True, exist_ok=True)
    cmd = [install_db, f"--defaults-file={paths.my_cnf(vm)}", "--auth-root-authentication-method=socket",
           f"--auth-root-socket-user={getpass.getuser()}", "--skip-test-db"]
    if os.geteuid() == 0:
        cmd.append("--user=root")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(
            f"mariadb-install-db failed for {vm}: {' | '.join(tail)}",
            f"inspect {datadir} or run `payctl down --purge` to start from scratch",
        )
    return True


def bootstrap(paths: StatePaths, vm: str, database: str, user: str, client_hosts: list[str]) -> None:
    """Create the database and the app user for localhost and each address a client may connect
    from (skip-name-resolve: addresses, not names)."""
    password = ensure_password(paths.password_file(vm))
    conn = root_connect(paths, vm)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            for host in dict.fromkeys(["localhost", *client_hosts]):
                cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"ALTER USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'")
    finally:
        conn.close()
