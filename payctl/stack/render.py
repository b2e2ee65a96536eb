"""The local backend's files, rendered from the service plan (pure: returns text, writes nothing):
supervisord's programs, the gateway (HAProxy), Prometheus, each shard's my.cnf, each VM's platform
config. Every process listens on, and is reached at, the topology's address for it."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from payctl.stack.binaries import Binaries, tansu_broker_args
from payctl.stack.paths import StatePaths
from payctl.stack.plan import (
    EnvFiles,
    PlannedService,
    ServicePlan,
    environment,
    gateway_servers,
    scrape_jobs,
    shard_routing,
)
from payctl.stack.plan import platform_config as plan_platform_config
from payctl.stack.topology import Topology
from payflow.config import PlatformConfig

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


def platform_config(plan: ServicePlan, paths: StatePaths, vm_name: str) -> PlatformConfig:
    """A VM's platform config: shards on this machine through their Unix socket where usable."""
    topo = plan.topology
    return plan_platform_config(
        plan, vm_name, vm_address=topo.vm_address, secrets=paths, bootstrap=topo.kafka_bootstrap,
        broker_is_tansu=topo.local_kafka, fault_dir=paths.fault_dir,
        unix_socket=lambda shard_vm: paths.db_socket(shard_vm) if topo.shard_socket_usable(shard_vm, vm_name) else None,
    )


@dataclass(frozen=True)
class Listener:
    """One address HAProxy binds; `namespace` set when it is inside a network namespace."""

    address: str
    port: int
    namespace: str | None = None

    def bind(self) -> str:
        return f"{self.address}:{self.port}" + (f" namespace {self.namespace}" if self.namespace else "")


def haproxy_cfg(plan: ServicePlan, error_503: Path) -> str:
    """The gateway. With netns isolation HAProxy runs on the host but opens its upstream
    connections from the shared namespace (HAProxy's `namespace` keyword), so gateway → ingest
    crosses the same links as everything else; it publishes the gateway (and the console) on the
    host's loopback the way a container runtime publishes ports."""
    topo = plan.topology
    shared_ns = topo.netns_name("shared") if topo.netns else None
    gateway = [Listener("127.0.0.1", topo.gateway_port)]
    if topo.netns:
        gateway += [Listener(topo.shared_address, topo.gateway_port, shared_ns),
                    Listener("127.0.0.1", topo.gateway_port, shared_ns)]
    elif topo.shared_address != "127.0.0.1":
        gateway.append(Listener(topo.shared_address, topo.gateway_port))
    servers = gateway_servers(plan, topo.address_of)
    console = None
    if topo.netns and topo.console_enabled:
        console = {"bind": Listener("127.0.0.1", topo.console_port).bind(),
                   "address": topo.shared_address, "port": topo.console_port}
    return _env.get_template("haproxy.cfg.j2").render(
        binds=[b.bind() for b in gateway], servers=servers, error_503=error_503, routing=shard_routing(plan),
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


def prometheus_yml(plan: ServicePlan) -> str:
    return _env.get_template("prometheus.yml.j2").render(jobs=scrape_jobs(plan, plan.topology.address_of))


def program_for(svc: PlannedService, topo: Topology, paths: StatePaths, bins: Binaries) -> Program:
    """The supervisor program for a service; with netns isolation its process runs inside its
    VM's (or the shared) namespace (`ip netns exec` execs in place, so the pid is the service's)."""
    program = _program(svc, topo, paths, bins)
    if topo.netns and svc.kind != "gateway":
        namespace = topo.netns_name(topo.role_of(svc))
        prefix = shlex.join([bins.require("ip"), "netns", "exec", namespace])
        program = Program(program.name, f"{prefix} {program.command}", program.directory, program.environment,
                          program.stopsignal, program.stopwaitsecs, program.startsecs)
    return program


def _program(svc: PlannedService, topo: Topology, paths: StatePaths, bins: Binaries) -> Program:
    root = str(paths.root)
    host = topo.address_of(svc)
    if svc.kind == "db":
        assert svc.vm is not None
        return Program(svc.name, shlex.join([bins.require("mariadbd"), f"--defaults-file={paths.my_cnf(svc.vm)}"]),
                       root, stopwaitsecs=svc.stop_wait_s)
    if svc.kind == "kafka":
        cmd = shlex.join([bins.require("tansu"), *tansu_broker_args(f"{host}:{svc.port}")])
        # The in-memory broker has nothing to flush and lingers ~5 s on SIGTERM; SIGINT is prompt.
        return Program(svc.name, cmd, root, stopsignal="INT", stopwaitsecs=svc.stop_wait_s)
    if svc.kind == "gateway":
        return Program(svc.name, shlex.join([bins.require("haproxy"), "-W", "-db", "-f", str(paths.haproxy_cfg)]),
                       root, stopsignal="USR1", stopwaitsecs=svc.stop_wait_s)
    if svc.kind == "prometheus":
        cmd = shlex.join([bins.require("prometheus"), f"--config.file={paths.prometheus_yml}",
                          f"--storage.tsdb.path={paths.prometheus_data}",
                          f"--web.listen-address={host}:{svc.port}",
                          "--storage.tsdb.retention.time=2d"])
        return Program(svc.name, cmd, root, stopwaitsecs=svc.stop_wait_s)
    if svc.command is None:
        raise ValueError(f"{svc.name}: the local backend has no command for a {svc.kind}")
    env = ",".join(f'{k}="{v}"' for k, v in environment(svc, _env_files(paths)).items())
    cmd = shlex.join(svc.command.argv(sys.executable, host, svc.port))
    return Program(svc.name, cmd, root, env, stopwaitsecs=svc.stop_wait_s)


def _env_files(paths: StatePaths) -> EnvFiles:
    return EnvFiles(payflow_config=lambda vm: str(paths.service_config(vm)),
                    metrics_multiproc=lambda vm: str(paths.prom_multiproc(vm)),
                    console_topology=str(paths.topology_json), console_reports=str(paths.reports),
                    console_state_dir=str(paths.root))


def supervisord_conf(plan: ServicePlan, paths: StatePaths, bins: Binaries) -> str:
    programs = [program_for(s, plan.topology, paths, bins) for s in plan.services]
    return _env.get_template("supervisord.conf.j2").render(
        sock=paths.supervisor_sock, logs=paths.logs, pidfile=paths.supervisord_pid, programs=programs
    )
