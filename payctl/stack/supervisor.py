"""Talk to the stack's supervisord over its unix socket (XML-RPC)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import xmlrpc.client
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from payctl.errors import EnvironmentProblem
from payctl.stack.paths import StatePaths


class Supervisor:
    def __init__(self, paths: StatePaths, supervisord: str) -> None:
        self.paths = paths
        self.supervisord = supervisord

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.paths.supervisor_sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def is_running(self) -> bool:
        if not self.paths.supervisor_sock.exists():
            return False
        try:
            return self._proxy().supervisor.getState()["statename"] == "RUNNING"  # type: ignore[no-any-return]
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def start_daemon(self) -> None:
        if self.is_running():
            self.reload()
            return
        self.paths.supervisor_sock.unlink(missing_ok=True)
        result = subprocess.run([self.supervisord, "-c", str(self.paths.supervisord_conf)],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise EnvironmentProblem(f"supervisord did not start: {result.stderr.strip() or result.stdout.strip()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.05)
        raise EnvironmentProblem("supervisord started but its socket never answered",
                                 f"see {self.paths.logs / 'supervisord.log'}")

    def reload(self) -> None:
        """Pick up a regenerated config: add new programs, drop removed ones."""
        proxy = self._proxy()
        added, changed, removed = proxy.supervisor.reloadConfig()[0]
        for name in removed + changed:
            try:
                proxy.supervisor.stopProcessGroup(name)
            except xmlrpc.client.Fault:
                pass
            proxy.supervisor.removeProcessGroup(name)
        for name in added + changed:
            proxy.supervisor.addProcessGroup(name)

    def info(self) -> dict[str, dict[str, Any]]:
        if not self.is_running():
            return {}
        return {p["name"]: p for p in self._proxy().supervisor.getAllProcessInfo()}

    def start(self, name: str) -> None:
        try:
            self._proxy().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise EnvironmentProblem(f"could not start {name}: {fault.faultString}",
                                         f"see `payctl logs {name}`") from fault

    def stop(self, name: str) -> None:
        try:
            self._proxy().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise EnvironmentProblem(f"could not stop {name}: {fault.faultString}") from fault

    def stop_many(self, names: list[str], timeout: float = 60) -> None:
        """Stop these programs together (each gets its own stop signal at once) and wait until
        none runs; a program supervisord does not know is skipped."""
        proxy = self._proxy()
        for name in names:
            try:
                proxy.supervisor.stopProcess(name, False)
            except xmlrpc.client.Fault:
                pass  # not running, or not a program of this stack
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if not any(info.get(n, {}).get("statename") in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                       for n in names):
                return
            time.sleep(0.1)

    def signal(self, name: str, sig: str) -> None:
        self._proxy().supervisor.signalProcess(name, sig)

    def kill9(self, name: str) -> int:
        """SIGKILL the program's whole process group, like a crash of the VM's process (granian's
        worker processes die with their parent); supervisor then restarts it (autorestart)."""
        pid = int(self.info().get(name, {}).get("pid") or 0)
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)  # supervisord makes every program a group leader
            except ProcessLookupError:
                os.kill(pid, signal.SIGKILL)
        return pid

    def shutdown(self, timeout: float = 60) -> None:
        if not self.is_running():
            return
        pid = _read_pid(self.paths)
        try:
            self._proxy().supervisor.stopAllProcesses(True)
        except (OSError, xmlrpc.client.Fault):
            pass
        try:
            self._proxy().supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            pass
        deadline = time.monotonic() + timeout
        while pid and process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _read_pid(paths: StatePaths) -> int:
    try:
        return int(paths.supervisord_pid.read_text().strip())
    except (OSError, ValueError):
        return 0


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
