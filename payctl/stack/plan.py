"""The service plan: every process of the stack, built once from the topology by a pure function.

For each process the plan says where it runs (a VM, or shared), its port, how it is started (for
the Python processes), how its health is checked, which Prometheus job scrapes it, what its
environment needs and what it waits for. Both backends render from it: render.py (supervisord,
HAProxy, Prometheus, service configs for local processes) and compose_render.py (compose.yml and
the files it mounts). What differs between the backends is stated explicitly where it is used:
  - the address a process listens on, and so is reached at (an `Addressing`): the topology's
    VM/shared address for local processes, the container's address in compose;
  - the paths of the files its environment names (`EnvFiles`);
  - how the infrastructure (kind db, kafka, gateway, prometheus) is started: a binary under
    supervisord, or an image.

A platform process every VM runs (the ingest, the relay, the consumers) is one `VmProcess` entry in
PLATFORM_PROCESSES; `plan_for(topo, processes)` takes another list for a stack that runs more."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from payctl.stack.paths import StatePaths
from payctl.stack.topology import Topology, VmSpec
from payflow.config import PlatformConfig, ShardConfig

# What a process's environment names: its platform config file, the folder prometheus_client
# shares between WSGI workers, or the console's topology and reports.
EnvNeed = Literal["payflow_config", "metrics_multiproc", "console_files"]


def wsgi_server_command(app: str, port: int, workers: int, threads: int, factory: bool = True,
                        host: str = "127.0.0.1", python: str | None = None) -> list[str]:
    """How a WSGI app is served (the ingest, the console, and the bench's bare-Flask ceiling).

    granian (Rust HTTP, WSGI in blocking threads) rather than gunicorn gthread: measured on this
    machine, the same app costs ~25 % less CPU per request under it (README, performance)."""
    cmd = [python or sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
           "--workers", str(workers), "--blocking-threads", str(threads), "--backlog", "2048",
           "--no-access-log", "--respawn-failed-workers", "--workers-kill-timeout", "5s"]
    if factory:
        cmd.append("--factory")
    return [*cmd, app]


@dataclass(frozen=True)
class ModuleCommand:
    """`python -m module args`."""

    module: str
    args: tuple[str, ...] = ()

    def argv(self, python: str, host: str, port: int) -> list[str]:
        return [python, "-m", self.module, *self.args]


@dataclass(frozen=True)
class WsgiCommand:
    """A WSGI app factory ("package.module:factory") served on the process's address and port."""

    app: str
    workers: int
    threads: int

    def argv(self, python: str, host: str, port: int) -> list[str]:
        return wsgi_server_command(self.app, port, self.workers, self.threads, host=host, python=python)


Command = ModuleCommand | WsgiCommand


@dataclass(frozen=True)
class PlannedService:
    """One process of the stack, as both backends see it."""

    name: str
    kind: str
    vm: str | None  # None: a shared service (broker, gateway, Prometheus, console)
    port: int
    health: str  # "tcp", "mysql" or an HTTP path
    command: Command | None = None  # None: infrastructure each backend starts its own way (binary, image)
    scrape_job: str | None = None  # the Prometheus job scraping its metrics on `port`
    env: tuple[EnvNeed, ...] = ()
    depends_on: tuple[str, ...] = ()  # services that must run first (a shard: and be migrated)
    stop_wait_s: int = 10  # how long a graceful stop may take before the process is killed


@dataclass(frozen=True)
class VmProcess:
    """A platform process each VM runs: the one entry a new consumer adds (beside its module).

    Its port reaches the process as `<kind>_port` in its VM's platform config (PlatformConfig)."""

    kind: str
    port: Callable[[VmSpec], int]
    module: str  # `python -m` module; with `wsgi`, the app factory "package.module:factory"
    wsgi: bool = False  # served by granian with the VM's ingest_workers × ingest_threads
    env: tuple[EnvNeed, ...] = ("payflow_config",)
    stop_wait_s: int = 10
    scrape: bool = True

    def command(self, vm: VmSpec) -> Command:
        if self.wsgi:
            return WsgiCommand(self.module, vm.ingest_workers, vm.ingest_threads)
        return ModuleCommand(self.module)


PLATFORM_PROCESSES: tuple[VmProcess, ...] = (
    VmProcess("ingest", lambda vm: vm.ingest_port, "payflow.ingest.app:create_app_from_env", wsgi=True,
              env=("payflow_config", "metrics_multiproc"), stop_wait_s=8),
    VmProcess("relay", lambda vm: vm.relay_port, "payflow.outbox.relay_process"),
    VmProcess("ledger", lambda vm: vm.ledger_port, "payflow.consumers.ledger"),
    VmProcess("refund", lambda vm: vm.refund_port, "payflow.consumers.refund"),
    VmProcess("settlement", lambda vm: vm.settlement_port, "payflow.consumers.settlement"),
)
# The console as both backends serve it: one worker, eight threads.
CONSOLE_COMMAND = WsgiCommand("payctl.console.app:create_app_from_env", 1, 8)


@dataclass(frozen=True)
class ServicePlan:
    topology: Topology
    services: tuple[PlannedService, ...]  # in start order

    def on(self, vm: str | None = None) -> list[PlannedService]:
        """What `payctl up [--vm VM]` starts: that VM's services, plus the shared ones unless the
        topology puts them on another VM (`shared_vm`, for real VMs)."""
        if vm is None:
            return list(self.services)
        self.topology.vm(vm)  # an unknown VM is a usage error
        with_shared = self.topology.shared_vm in (None, vm)
        return [s for s in self.services if s.vm == vm or (s.vm is None and with_shared)]

    def of_kind(self, kind: str) -> list[PlannedService]:
        return [s for s in self.services if s.kind == kind]


def plan_for(topo: Topology, processes: Sequence[VmProcess] = PLATFORM_PROCESSES) -> ServicePlan:
    """The plan in start order: databases, broker, each VM's platform processes, gateway,
    Prometheus, console."""
    shards = tuple(topo.shard_name(i) for i in range(topo.shard_count))
    broker = ("kafka",) if topo.local_kafka else ()
    out = [PlannedService(shards[i], "db", vm.name, vm.db_port, "mysql", stop_wait_s=30)
           for i, vm in enumerate(topo.vms)]
    if topo.local_kafka:
        out.append(PlannedService("kafka", "kafka", None, topo.kafka_port, "tcp", stop_wait_s=8))
    for vm in topo.vms:
        out += [PlannedService(f"{p.kind}-{vm.name}", p.kind, vm.name, p.port(vm), "/health", p.command(vm),
                               scrape_job=p.kind if p.scrape else None, env=p.env, depends_on=shards + broker,
                               stop_wait_s=p.stop_wait_s)
                for p in processes]
    ingests = tuple(s.name for s in out if s.kind == "ingest")
    out.append(PlannedService("gateway", "gateway", None, topo.gateway_port, "/gateway/health", depends_on=ingests,
                              stop_wait_s=5))
    if topo.prometheus_enabled:
        out.append(PlannedService("prometheus", "prometheus", None, topo.prometheus_port, "/-/ready"))
    if topo.console_enabled:
        out.append(PlannedService("console", "console", None, topo.console_port, "/health", CONSOLE_COMMAND,
                                  env=("console_files",), stop_wait_s=5))
    seen: dict[int, str] = {}
    for svc in out:
        if svc.port in seen:
            raise ValueError(f"port {svc.port} is planned for both {seen[svc.port]} and {svc.name}")
        seen[svc.port] = svc.name
    return ServicePlan(topo, tuple(out))


def stop_groups(plan: ServicePlan) -> list[tuple[str, list[str]]]:
    """What `down` stops, group by group, in reverse start order: the front (gateway, Prometheus,
    console) first, then each VM's platform processes, the broker, the shards last (so no worker
    loses its database while it still runs). Pure: (label, service names)."""
    front = [s.name for s in plan.services if s.vm is None and s.kind not in ("db", "kafka")]
    groups = [(", ".join(front), front)] if front else []
    for vm in plan.topology.vms:
        names = [s.name for s in plan.services if s.vm == vm.name and s.kind != "db"]
        if names:
            groups.append((f"{vm.name} services ({len(names)})", names))
    broker = [s.name for s in plan.services if s.kind == "kafka"]
    if broker:
        groups.append(("broker", broker))
    dbs = [s.name for s in plan.services if s.kind == "db"]
    if dbs:
        groups.append((", ".join(dbs), dbs))
    return groups


def services(topo: Topology, vm: str | None = None) -> list[PlannedService]:
    """The topology's processes in start order (with `vm`, what `payctl up --vm` starts)."""
    return plan_for(topo).on(vm)


# -- what both backends render the same way, given where things are -----------------------------
Addressing = Callable[[PlannedService], str]
"""Where a service listens, and so where the gateway and Prometheus reach it: the backends'
one difference here (local: its VM's or the shared address; compose: its container's)."""


@dataclass(frozen=True)
class ScrapeTarget:
    service: str
    vm: str | None
    address: str
    port: int


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: tuple[ScrapeTarget, ...]


def scrape_jobs(plan: ServicePlan, address: Addressing) -> list[ScrapeJob]:
    """Prometheus's jobs: one per scrape job of the plan, each service at its address."""
    jobs: dict[str, list[ScrapeTarget]] = {}
    for svc in plan.services:
        if svc.scrape_job is not None:
            jobs.setdefault(svc.scrape_job, []).append(ScrapeTarget(svc.name, svc.vm, address(svc), svc.port))
    return [ScrapeJob(name, tuple(targets)) for name, targets in jobs.items()]


@dataclass(frozen=True)
class GatewayServer:
    name: str
    address: str
    port: int
    maxconn: int


def gateway_servers(plan: ServicePlan, address: Addressing) -> list[GatewayServer]:
    """The gateway's ingest servers. `maxconn`: at most 8 requests per WSGI thread of the instance
    in flight on it, the rest queued in the gateway (haproxy.cfg.j2 says why; README "A slow
    instance is not a dead one" has the measurements behind the 8)."""
    out = []
    for svc in plan.of_kind("ingest"):
        threads = svc.command.workers * svc.command.threads if isinstance(svc.command, WsgiCommand) else 1
        out.append(GatewayServer(svc.name, address(svc), svc.port, 8 * threads))
    return out


@dataclass(frozen=True)
class ShardPreference:
    """Send shard `index`'s calls to `server` while it is the one instance that reaches the shard
    (its `/health/shards/<shard>` passes and every one of `others`' fails)."""

    index: int
    shard: str
    server: str
    others: tuple[str, ...]


def gateway_shard_preferences(plan: ServicePlan) -> list[ShardPreference]:
    """The gateway's per-shard routing rules (haproxy.cfg.j2 says why). With two instances this is
    "the other one" for each; with more, a shard reached by several is balanced over all as before."""
    topo = plan.topology
    names = [svc.name for svc in plan.of_kind("ingest")]
    if len(names) < 2:
        return []
    return [ShardPreference(index, topo.shard_name(index), name, tuple(n for n in names if n != name))
            for index in range(topo.shard_count) for name in names]


@dataclass(frozen=True)
class ShardRouting:
    """What haproxy.cfg.j2 needs to route by shard: N, the shards' names, the preferences."""

    shard_count: int
    shards: tuple[str, ...]
    preferences: tuple[ShardPreference, ...]


def shard_routing(plan: ServicePlan) -> ShardRouting:
    topo = plan.topology
    return ShardRouting(topo.shard_count, tuple(topo.shard_name(i) for i in range(topo.shard_count)),
                        tuple(gateway_shard_preferences(plan)))


@dataclass(frozen=True)
class EnvFiles:
    """Where a backend puts the files a process's environment names."""

    payflow_config: Callable[[str], str]  # vm -> the VM's platform config file
    metrics_multiproc: Callable[[str], str]  # vm -> its ingest's prometheus_client folder
    console_topology: str
    console_reports: str
    # absolute: the console runs inside the state folder and must not resolve it again from there
    console_state_dir: str | None = None


def environment(svc: PlannedService, files: EnvFiles) -> dict[str, str]:
    """The environment a Python process of the plan starts with."""
    env: dict[str, str] = {}
    if "payflow_config" in svc.env:
        env["PAYFLOW_CONFIG"] = files.payflow_config(_vm(svc))
    if "console_files" in svc.env:
        env["PAYCTL_CONSOLE_TOPOLOGY"] = files.console_topology
        env["PAYCTL_CONSOLE_REPORTS"] = files.console_reports
        if files.console_state_dir is not None:
            env["PAYCTL_CONSOLE_STATE_DIR"] = files.console_state_dir
    env["PYTHONUNBUFFERED"] = "1"
    if "metrics_multiproc" in svc.env:
        env["PROMETHEUS_MULTIPROC_DIR"] = files.metrics_multiproc(_vm(svc))
    return env


def _vm(svc: PlannedService) -> str:
    if svc.vm is None:
        raise ValueError(f"{svc.name} is a shared service: it has no VM's files")
    return svc.vm


def platform_config(plan: ServicePlan, vm_name: str, *, vm_address: Callable[[str], str], secrets: StatePaths,
                    bootstrap: str, broker_is_tansu: bool, unix_socket: Callable[[str], Path | None] | None = None,
                    fault_dir: Path | None = None) -> PlatformConfig:
    """One VM's platform config: every shard at its VM's address (or its Unix socket where
    `unix_socket` gives one), the VM's processes' ports, the secrets' files under `secrets`."""
    topo = plan.topology
    vm = topo.vm(vm_name)
    shards = [ShardConfig(index=i, name=topo.shard_name(i), host=vm_address(other.name), port=other.db_port,
                          unix_socket=unix_socket(other.name) if unix_socket else None, database=topo.database,
                          user=topo.db_user, password_file=secrets.password_file(other.name))
              for i, other in enumerate(topo.vms)]
    ports = {f"{s.kind}_port": s.port for s in plan.services if s.vm == vm.name and s.command is not None}
    return PlatformConfig.model_validate({
        "vm": vm.name, "shard_index": topo.vms.index(vm), "shards": shards, "bootstrap_servers": bootstrap,
        **ports, "bind_host": vm_address(vm.name),
        "settings": topo.platform_settings(broker_is_tansu=broker_is_tansu),
        "event_secret_file": secrets.event_secret_file, "fault_dir": fault_dir,
    })
