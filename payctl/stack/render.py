"""Generate every config file from the topology (pure: returns text, writes nothing)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from payctl.stack.binaries import Binaries
from payctl.stack.paths import StatePaths
from payctl.stack.topology import ServiceSpec, Topology, services
from payflow.config import PlatformConfig, ShardConfig

_env = Environment(
    loader=PackageLoader("payctl", "templates"), undefined=StrictUndefined, keep_trailing_newline=True
)


@dataclass(frozen=True)
class Program:
    name: str
    command: str
    directory: str
    environment: str = ""
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    startsecs: int = 1


def platform_config(topo: Topology, paths: StatePaths, vm_name: str) -> PlatformConfig:
    shards = [
        ShardConfig(index=i, name=topo.shard_name(i), host=topo.vm_address(vm.name), port=vm.db_port,
                    unix_socket=paths.db_socket(vm.name) if topo.shard_socket_usable(vm.name, vm_name) else None,
                    database=topo.database,
                    user=topo.db_user, password_file=paths.password_file(vm.name))
        for i, vm in enumerate(topo.vms)
    ]
    vm = topo.vm(vm_name)
    return PlatformConfig(
        vm=vm.name, shard_index=topo.vms.index(vm), shards=shards, bootstrap_servers=topo.kafka_bootstrap,
        ingest_port=vm.ingest_port, relay_port=vm.relay_port, ledger_port=vm.ledger_port,
        refund_port=vm.refund_port, settlement_port=vm.settlement_port, bind_host=topo.vm_address(vm.name),
        settings=topo.platform_settings(broker_is_tansu=topo.local_kafka),
        event_secret_file=paths.event_secret_file, fault_dir=paths.fault_dir,
    )


@dataclass(frozen=True)
class Listener:
    """One address HAProxy binds; `namespace` set when it is inside a network namespace."""

    address: str
    port: int
    namespace: str | None = None

    def bind(self) -> str:
        return f"{self.address}:{self.port}" + (f" namespace {self.namespace}" if self.namespace else "")


def gateway_servers(topo: Topology, address: Callable[[str], str]) -> list[dict[str, object]]:
    """The gateway's ingest servers (both backends' haproxy.cfg). `maxconn`: at most 8 requests per
    WSGI thread of the instance in flight on it, the rest queued in the gateway (the template says
    why; README "A slow instance is not a dead one" has the measurements behind the 8)."""
    return [{"name": f"ingest-{vm.name}", "address": address(vm.name), "port": vm.ingest_port,
             "maxconn": 8 * vm.ingest_workers * vm.ingest_threads} for vm in topo.vms]


def haproxy_cfg(topo: Topology, error_503: Path) -> str:
    """The gateway. With netns isolation HAProxy runs on the host but opens its upstream
    connections from the shared namespace (HAProxy's `namespace` keyword), so gateway → ingest
    crosses the same links as everything else; it publishes the gateway (and the console) on the
    host's loopback the way a container runtime publishes ports."""
    shared_ns = topo.netns_name("shared") if topo.netns else None
    gateway = [Listener("127.0.0.1", topo.gateway_port)]
    if topo.netns:
        gateway += [Listener(topo.shared_address, topo.gateway_port, shared_ns),
                    Listener("127.0.0.1", topo.gateway_port, shared_ns)]
    elif topo.shared_address != "127.0.0.1":
        gateway.append(Listener(topo.shared_address, topo.gateway_port))
    servers = gateway_servers(topo, topo.vm_address)
    console = None
    if topo.netns and topo.console_enabled:
        console = {"bind": Listener("127.0.0.1", topo.console_port).bind(),
                   "address": topo.shared_address, "port": topo.console_port}
    return _env.get_template("haproxy.cfg.j2").render(
        binds=[b.bind() for b in gateway], servers=servers, error_503=error_503,
        server_namespace=f" namespace {shared_ns}" if shared_ns else "", console=console,
    )


def my_cnf(topo: Topology, paths: StatePaths, vm_name: str) -> str:
    vm = topo.vm(vm_name)
    return _env.get_template("my.cnf.j2").render(
        shard=topo.shard_name(topo.vms.index(vm)), vm=vm.name, run_as_root=os.geteuid() == 0,
        datadir=paths.datadir(vm.name), socket=paths.db_socket(vm.name), port=vm.db_port,
        bind_address=topo.vm_address(vm.name),
        pidfile=paths.mariadb_dir(vm.name) / "mariadbd.pid",
    )


def prometheus_yml(topo: Topology) -> str:
    jobs: dict[str, list[dict[str, object]]] = {}
    for svc in services(topo):
        if svc.kind in ("db", "kafka", "gateway", "prometheus", "console"):
            continue
        jobs.setdefault(svc.kind, []).append(
            {"name": svc.name, "vm": svc.vm, "address": topo.address_of(svc), "port": svc.port})
    return _env.get_template("prometheus.yml.j2").render(
        jobs=[{"name": k, "targets": v} for k, v in jobs.items()]
    )


def _python(module: str, *args: str) -> str:
    return shlex.join([sys.executable, "-m", module, *args])


def program_for(svc: ServiceSpec, topo: Topology, paths: StatePaths, bins: Binaries) -> Program:
    """The supervisor program for a service; with netns isolation its process runs inside its
    VM's (or the shared) namespace (`ip netns exec` execs in place, so the pid is the service's)."""
    program = _program(svc, topo, paths, bins)
    if topo.netns and svc.kind != "gateway":
        namespace = topo.netns_name(topo.role_of(svc))
        prefix = shlex.join([bins.require("ip"), "netns", "exec", namespace])
        program = Program(program.name, f"{prefix} {program.command}", program.directory, program.environment,
                          program.stopsignal, program.stopwaitsecs, program.startsecs)
    return program


def _program(svc: ServiceSpec, topo: Topology, paths: StatePaths, bins: Binaries) -> Program:
    root = str(paths.root)
    host = topo.address_of(svc)
    if svc.kind == "db":
        assert svc.vm is not None
        return Program(svc.name, shlex.join([bins.require("mariadbd"), f"--defaults-file={paths.my_cnf(svc.vm)}"]),
                       root, stopwaitsecs=30, startsecs=1)
    if svc.kind == "kafka":
        url = f"tcp://{host}:{topo.kafka_port}"
        cmd = shlex.join([bins.require("tansu"), "broker", "--listener-url", url,
                          "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"])
        # The in-memory broker has nothing to flush and lingers ~5 s on SIGTERM; SIGINT is prompt.
        return Program(svc.name, cmd, root, stopsignal="INT", stopwaitsecs=8)
    if svc.kind == "gateway":
        return Program(svc.name, shlex.join([bins.require("haproxy"), "-W", "-db", "-f", str(paths.haproxy_cfg)]),
                       root, stopsignal="USR1", stopwaitsecs=5)
    if svc.kind == "prometheus":
        cmd = shlex.join([bins.require("prometheus"), f"--config.file={paths.prometheus_yml}",
                          f"--storage.tsdb.path={paths.prometheus_data}",
                          f"--web.listen-address={host}:{topo.prometheus_port}",
                          "--storage.tsdb.retention.time=2d"])
        return Program(svc.name, cmd, root, stopwaitsecs=10)
    if svc.kind == "console":
        cmd = shlex.join(wsgi_server_command("payctl.console.app:create_app_from_env", svc.port, 1, 8, host=host))
        env = (f'PAYCTL_CONSOLE_TOPOLOGY="{paths.topology_json}",PAYCTL_CONSOLE_REPORTS="{paths.reports}",'
               f'PAYCTL_CONSOLE_STATE_DIR="{paths.root}",PYTHONUNBUFFERED="1"')
        return Program(svc.name, cmd, root, env, stopwaitsecs=5)
    assert svc.vm is not None
    env = f'PAYFLOW_CONFIG="{paths.service_config(svc.vm)}",PYTHONUNBUFFERED="1"'
    if svc.kind == "ingest":
        vm = topo.vm(svc.vm)
        multiproc = paths.prom_multiproc(svc.vm)
        cmd = shlex.join(wsgi_server_command("payflow.ingest.app:create_app_from_env", svc.port, vm.ingest_workers,
                                             vm.ingest_threads, host=host))
        return Program(svc.name, cmd, root, env + f',PROMETHEUS_MULTIPROC_DIR="{multiproc}"', stopwaitsecs=8)
    module = {"relay": "payflow.outbox.relay_process", "ledger": "payflow.consumers.ledger",
              "refund": "payflow.consumers.refund", "settlement": "payflow.consumers.settlement"}[svc.kind]
    return Program(svc.name, _python(module), root, env, stopwaitsecs=10)


def wsgi_server_command(app: str, port: int, workers: int, threads: int, factory: bool = True,
                        host: str = "127.0.0.1") -> list[str]:
    """How a WSGI app is served (the ingest, and the bench's bare-Flask ceiling the same way).

    granian (Rust HTTP, WSGI in blocking threads) rather than gunicorn gthread: measured on this
    machine, the same app costs ~25 % less CPU per request under it (README, performance)."""
    cmd = [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
           "--workers", str(workers), "--blocking-threads", str(threads), "--backlog", "2048",
           "--no-access-log", "--respawn-failed-workers", "--workers-kill-timeout", "5s"]
    if factory:
        cmd.append("--factory")
    return [*cmd, app]


def supervisord_conf(topo: Topology, paths: StatePaths, bins: Binaries) -> str:
    programs = [program_for(s, topo, paths, bins) for s in services(topo)]
    return _env.get_template("supervisord.conf.j2").render(
        sock=paths.supervisor_sock, logs=paths.logs, pidfile=paths.supervisord_pid, programs=programs
    )
