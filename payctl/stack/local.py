"""The local backend: every service a process under supervisord, state in the state folder."""

from __future__ import annotations

import concurrent.futures
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from payctl.atomic import write_atomic
from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import mariadb, owned, render, shards
from payctl.stack.backend import ServiceStatus
from payctl.stack.binaries import INSTALL_HINTS, Binaries
from payctl.stack.kafka_admin import create_topics
from payctl.stack.netns import NetnsNetwork, require_netns_support
from payctl.stack.paths import StatePaths
from payctl.stack.plan import PlannedService, plan_for, stop_groups
from payctl.stack.probes import port_free, probe, relay_breaker, wait_gateway_routes
from payctl.stack.shards import apply_migrations
from payctl.stack.supervisor import Supervisor
from payctl.stack.topology import Topology

Progress = Callable[[str], None]


def needed_binaries(topo: Topology) -> list[str]:
    needed = ["supervisord", "mariadbd", "mariadb-install-db", "haproxy"]
    if topo.local_kafka:
        needed.append("tansu")
    if topo.prometheus_enabled:
        needed.append("prometheus")
    if topo.netns:
        needed.append("ip")
    return needed


def missing_binaries_error(missing: list[str]) -> EnvironmentProblem:
    cmds = sorted({INSTALL_HINTS[m] for m in missing})
    return EnvironmentProblem(f"missing on this machine: {', '.join(missing)}",
                              "install with: " + " && ".join(cmds) + "; `payctl doctor` lists everything")


class LocalBackend:
    name = "local"

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.plan = plan_for(topo)
        self.paths = StatePaths(topo.state_path())
        self.bins = Binaries.discover()
        self.sup = Supervisor(self.paths, self.bins.found.get("supervisord") or "supervisord")
        self.network = NetnsNetwork(topo)

    # -- files --------------------------------------------------------------------------------
    def write_files(self) -> None:
        p = self.paths
        owned.claim(p.root)
        for d in (p.root, p.logs, p.haproxy_cfg.parent, p.prometheus_yml.parent, p.prometheus_data):
            d.mkdir(parents=True, exist_ok=True)
        p.root.chmod(0o700)
        p.make_socket_dir()
        error_503 = p.haproxy_cfg.parent / "503.http"
        error_503.write_text(resources.files("payctl").joinpath("templates/503.http").read_text())
        for vm in self.topo.vms:
            mariadb.ensure_password(p.password_file(vm.name))
            mariadb.ensure_password(p.event_secret_file)
            p.mariadb_dir(vm.name).mkdir(parents=True, exist_ok=True)
            p.my_cnf(vm.name).write_text(render.my_cnf(self.topo, p, vm.name))
            cfg = render.platform_config(self.plan, p, vm.name)
            _write_private(p.service_config(vm.name), cfg.model_dump_json(indent=2))
        p.haproxy_cfg.write_text(render.haproxy_cfg(self.plan, error_503))
        p.prometheus_yml.write_text(render.prometheus_yml(self.plan))
        p.supervisord_conf.write_text(render.supervisord_conf(self.plan, p, self.bins))
        p.topology_json.write_text(self.topo.model_dump_json(indent=2))
        p.isolation_file.write_text(self.topo.isolation + "\n")
        p.backend_file.unlink(missing_ok=True)  # a compose stack's record: this folder is a local stack's now

    # -- up -----------------------------------------------------------------------------------
    def up(self, vm: str | None = None, progress: Progress = lambda _m: None, timeout_s: float = 60) -> None:
        self.topo.check_api_auth()  # before anything starts
        if self.topo.netns:
            require_netns_support()
        missing = self.bins.missing(needed_binaries(self.topo))
        if missing:
            raise missing_binaries_error(missing)
        wanted = self.plan.on(vm)
        was_running = self.sup.is_running()
        running_isolation = self.paths.running_isolation() if was_running else None
        if running_isolation not in (None, self.topo.isolation):
            raise UsageError(f"the stack is running with isolation \"{running_isolation}\"",
                             "run `payctl down` before switching isolation")
        active = {n for n, i in self.sup.info().items() if i["statename"] in ("RUNNING", "STARTING")}
        for svc in wanted:
            # In netns mode a service's port lives in its namespace; only published ports are the host's.
            on_host = not self.topo.netns or svc.kind in ("gateway", "console")
            if on_host and svc.name not in active and not port_free(svc.port):
                raise EnvironmentProblem(
                    f"port {svc.port} needed by {svc.name} is already in use",
                    "stop whatever holds it or change the port in stack.toml",
                )
        started: list[str] = []
        try:
            if self.topo.netns:
                progress("creating network namespaces")
                self.network.ensure()
            progress("writing configuration")
            self.write_files()
            for svc in wanted:
                if svc.kind == "db" and svc.vm:
                    progress(f"initialising {svc.name}")
                    mariadb.init_datadir(self.bins.require("mariadb-install-db"), self.paths, svc.vm)
                if svc.kind == "ingest" and svc.vm and svc.name not in active:
                    mp = self.paths.prom_multiproc(svc.vm)
                    shutil.rmtree(mp, ignore_errors=True)
                    mp.mkdir(parents=True)
            progress("starting supervisord")
            self.sup.start_daemon()
            for svc in [s for s in wanted if s.kind == "db"]:
                progress(f"starting {svc.name}")
                self._start(svc, started, active)
                self._wait_db(svc, timeout_s)
                assert svc.vm is not None
                mariadb.bootstrap(self.paths, svc.vm, self.topo.database, self.topo.db_user,
                                  self.topo.peer_addresses())
            progress("applying schema")
            apply_migrations(self.topo, [s.vm for s in wanted if s.kind == "db" and s.vm])
            for svc in [s for s in wanted if s.kind == "kafka"]:
                progress("starting kafka")
                self._start(svc, started, active)
                self._wait(svc, timeout_s)
                progress("creating topics")
                create_topics(self.topo.kafka_bootstrap, len(self.topo.vms))
            rest = [s for s in wanted if s.kind not in ("db", "kafka")]
            for svc in rest:
                self._start(svc, started, active)
            progress("waiting for services to become healthy")
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda s: self._wait(s, timeout_s), rest))
            if any(s.kind == "gateway" for s in wanted):  # real VMs: the gateway may run on the other one
                progress("waiting for the gateway to route to every ingest instance")
                wait_gateway_routes(self.topo, [s.name for s in wanted if s.kind == "ingest"], timeout_s)
        except BaseException:
            if not was_running:
                self.sup.shutdown()
                self.paths.isolation_file.unlink(missing_ok=True)
                try:
                    self.network.teardown()
                except EnvironmentProblem:
                    pass  # the error that stopped `up` is the one to report; `down` says what is left
            else:
                for name in reversed(started):
                    self.sup.stop(name)
            raise

    def _start(self, svc: PlannedService, started: list[str], active: set[str]) -> None:
        if svc.name in active:
            return
        self.sup.start(svc.name)
        started.append(svc.name)

    def _check_alive(self, svc: PlannedService) -> None:
        state = self.sup.info().get(svc.name, {}).get("statename")
        if state in ("FATAL", "EXITED", "BACKOFF", "STOPPED"):
            tail = self.log_tail(svc.name, 5)
            raise EnvironmentProblem(f"{svc.name} failed to start (state {state}): {tail}",
                                     f"see `payctl logs {svc.name}`")

    def _wait_db(self, svc: PlannedService, timeout_s: float) -> None:
        assert svc.vm is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                shards.root_connect(self.paths, svc.vm, timeout_s=1).close()
                return
            except Exception:
                self._check_alive(svc)
                time.sleep(0.1)
        raise EnvironmentProblem(f"{svc.name} did not accept connections within {timeout_s:.0f}s",
                                 f"see `payctl logs {svc.name}`")

    def _wait(self, svc: PlannedService, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        detail = ""
        while time.monotonic() < deadline:
            ok, detail = probe(svc, self.topo, self.paths)
            if ok:
                return
            self._check_alive(svc)
            time.sleep(0.2)
        raise EnvironmentProblem(f"{svc.name} did not become healthy within {timeout_s:.0f}s ({detail})",
                                 f"see `payctl logs {svc.name}`")

    # -- down ---------------------------------------------------------------------------------
    def down(self, purge: bool = False, progress: Progress = lambda _m: None) -> None:
        """Stop every process (group by group, reverse start order, `progress` told after each),
        then remove every namespace and link this topology made (also leftovers of a crashed run,
        recognised by name)."""
        if self.sup.is_running():
            for label, names in stop_groups(self.plan):
                self.sup.stop_many(names)
                progress(f"stopped {label}")
        self.sup.shutdown()
        self.network.teardown()
        self.paths.isolation_file.unlink(missing_ok=True)
        if purge:
            owned.delete(self.paths.root)
            self.paths.remove_socket_dir()
            progress("state folder deleted")

    # -- status -------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        info = self.sup.info()
        now = time.time()

        def one(svc: PlannedService) -> ServiceStatus:
            i = info.get(svc.name, {})
            state = i.get("statename", "ABSENT")
            running = state in ("RUNNING", "STARTING")
            if running and _frozen(int(i["pid"])):
                healthy, detail = False, "paused (SIGSTOP): not answering"
            else:
                healthy, detail = probe(svc, self.topo, self.paths) if running else (False, state.lower())
            breaker = (relay_breaker(svc.port, host=self.topo.address_of(svc)).get("state")
                       if svc.kind == "relay" and running else None)
            return ServiceStatus(
                svc.name, svc.kind, svc.vm, svc.port, state, int(i["pid"]) if running else None,
                round(now - i["start"], 1) if running else None, healthy, detail, breaker,
                self.topo.address_of(svc),
            )

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, self.plan.services))

    # -- one service --------------------------------------------------------------------------
    def _known(self, name: str) -> PlannedService:
        for svc in self.plan.services:
            if svc.name == name:
                return svc
        raise UsageError(f"unknown service '{name}'",
                         f"known: {', '.join(s.name for s in self.plan.services)}")

    def _require_running_stack(self) -> None:
        if not self.sup.is_running():
            raise EnvironmentProblem("the stack is not running", "start it with `payctl up`")

    def _state(self, name: str) -> str:
        return str(self.sup.info().get(name, {}).get("statename", "ABSENT"))

    def _require_running(self, name: str, verb: str) -> None:
        state = self._state(name)
        if state not in ("RUNNING", "STARTING"):
            raise UsageError(f"cannot {verb} {name}: it is {state.lower()}", f"start it first: `payctl start {name}`")

    def start(self, name: str, wait: bool = True) -> bool:
        svc = self._known(name)
        self._require_running_stack()
        state = self._state(name)
        if state == "RUNNING":
            return False
        # STARTING: started a moment ago (supervisor's start seconds not yet passed; a restart after a
        # kill too): nothing to start, but everything that follows a start still holds
        if state != "STARTING":
            self.sup.start(name)
        if wait:
            self._wait(svc, 60)
        if svc.kind == "ingest" and wait and self.sup.info().get("gateway", {}).get("statename") == "RUNNING":
            wait_gateway_routes(self.topo, [name], 30)
        if svc.kind == "kafka":
            # The in-memory broker comes back empty: recreate the topics straight away.
            create_topics(self.topo.kafka_bootstrap, len(self.topo.vms))
        return state != "STARTING"

    def stop(self, name: str) -> bool:
        self._known(name)
        self._require_running_stack()
        if self._state(name) not in ("RUNNING", "STARTING", "BACKOFF"):
            return False
        self.sup.stop(name)
        return True

    def pause(self, name: str) -> None:
        self._known(name)
        self._require_running_stack()
        self._require_running(name, "pause")
        self.sup.signal(name, "STOP")

    def resume(self, name: str) -> None:
        self._known(name)
        self._require_running_stack()
        self._require_running(name, "resume")
        self.sup.signal(name, "CONT")

    def kill(self, name: str) -> int:
        self._known(name)
        self._require_running_stack()
        self._require_running(name, "kill")
        return self.sup.kill9(name)

    def log_path(self, name: str) -> Path:
        self._known(name)
        return self.paths.log(name)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.paths.log(name)
        if not path.exists():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])

    def log_lines(self, name: str, lines: int = 50, follow: bool = False) -> Iterator[str]:
        """The last `lines` of the service's log file; with `follow`, then what is appended (tail -F)."""
        path = self.log_path(name)
        if not path.exists():
            raise EnvironmentProblem(f"no log for {name} yet at {path}", "has the stack been started?")
        cmd = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(path)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace") as proc:
            assert proc.stdout is not None
            try:
                yield from proc.stdout
            finally:
                proc.terminate()

    def is_up(self) -> bool:
        return self.sup.is_running()


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, text, mode=0o600)


def _frozen(pid: int) -> bool:
    """A process stopped by SIGSTOP (state T in /proc): supervisor still calls it RUNNING."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False
