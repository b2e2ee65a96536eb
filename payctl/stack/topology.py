"""The topology: VMs, their services and ports, shard count and settings (stack.toml).

Everything else is generated from this model (the process list: payctl.stack.plan; the files the
backends run it from: render.py, compose_render.py); no other file repeats a port number."""

from __future__ import annotations

import hashlib
import os
import tomllib
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from payctl.errors import UsageError
from payflow.config import Settings

if TYPE_CHECKING:
    from payctl.stack.plan import PlannedService

Port = int


class VmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")
    db_port: Port = Field(ge=1024, le=65535)
    ingest_port: Port = Field(ge=1024, le=65535)
    relay_port: Port = Field(ge=1024, le=65535)
    ledger_port: Port = Field(ge=1024, le=65535)
    refund_port: Port = Field(ge=1024, le=65535)
    settlement_port: Port = Field(ge=1024, le=65535)
    ingest_workers: int = Field(default=2, ge=1, le=32)
    ingest_threads: int = Field(default=4, ge=1, le=64)
    host: IPv4Address | None = Field(
        default=None, description="a real VM's address: its services bind to it, the others reach them there"
    )


def _default_vms() -> list[VmSpec]:
    return [
        VmSpec(name=f"vm{i}", db_port=13305 + i, ingest_port=18080 + i, relay_port=18180 + i,
               ledger_port=18280 + i, refund_port=18380 + i, settlement_port=18480 + i)
        for i in (1, 2)
    ]


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="payctl", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    state_dir: Path = Path(".payctl")
    backend: Literal["local", "compose"] = "local"
    # the compose backend's images: "debian" built here from Debian's packages (no registry needed),
    # "upstream" the official images (MariaDB, Apache Kafka, HAProxy, Prometheus, Grafana) pulled
    compose_images: Literal["debian", "upstream"] = "debian"
    # "netns": each VM in its own network namespace with its own address on a private bridge, the
    # shared services (broker, gateway, Prometheus, console) in a third; cross-VM calls cross a link.
    isolation: Literal["none", "netns"] = "none"
    netns_subnet: IPv4Network = Field(default=IPv4Network("10.203.0.0/24"),
                                      description="the private /24 the namespaces take their addresses from")
    compose_subnet: IPv4Network = Field(default=IPv4Network("10.204.0.0/24"),
                                        description="the compose backend: the private /24 of the stack's network "
                                                    "(two compose stacks on one engine need two)")
    shared_host: IPv4Address | None = Field(
        default=None, description="real VMs: the address of the machine running broker, gateway, Prometheus, console"
    )
    shared_vm: str | None = Field(
        default=None, description="real VMs: the VM whose `payctl up --vm` also starts the shared services"
    )
    gateway_port: Port = Field(default=8080, ge=1024, le=65535)
    kafka_port: Port = Field(default=19092, ge=1024, le=65535)
    prometheus_port: Port = Field(default=19090, ge=1024, le=65535)
    prometheus_enabled: bool = True
    console_port: Port = Field(default=8090, ge=1024, le=65535)
    console_enabled: bool = True
    bootstrap_servers: str | None = Field(
        default=None, description="an external Kafka; when set no local broker is started"
    )
    database: str = Field(default="payments", pattern=r"^[a-z_][a-z0-9_]{0,31}$")
    db_user: str = Field(default="payflow", pattern=r"^[a-z_][a-z0-9_]{0,15}$")
    vms: list[VmSpec] = Field(default_factory=_default_vms, min_length=1, max_length=16)
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _unique(self) -> Topology:
        names = [vm.name for vm in self.vms]
        if len(set(names)) != len(names):
            raise ValueError(f"vm names must be unique, got {names}")
        if "shared" in names:
            raise ValueError("a vm may not be named 'shared' (the shared services' namespace is called that)")
        for field, subnet, example in (("netns_subnet", self.netns_subnet, "10.203.0.0/24"),
                                       ("compose_subnet", self.compose_subnet, "10.204.0.0/24")):
            if subnet.prefixlen != 24 or not subnet.is_private:
                raise ValueError(f"{field} must be a private /24 (e.g. {example}), got {subnet}")
        if self.netns_subnet == self.compose_subnet:
            raise ValueError(f"netns_subnet and compose_subnet must differ, both are {self.netns_subnet}")
        if self.isolation == "netns" and (self.shared_host or any(vm.host for vm in self.vms)):
            raise ValueError("isolation = \"netns\" gives every VM its own address; drop `host`/`shared_host`")
        if self.shared_vm is not None and self.shared_vm not in names:
            raise ValueError(f"shared_vm '{self.shared_vm}' is not one of the vms {names}")
        ports = self.all_ports()
        seen: dict[int, str] = {}
        for owner, port in ports:
            if port in seen:
                raise ValueError(f"port {port} is used by both {seen[port]} and {owner}")
            seen[port] = owner
        return self

    # -- derived facts ----------------------------------------------------------------------
    @property
    def shard_count(self) -> int:
        return len(self.vms)

    @property
    def kafka_bootstrap(self) -> str:
        return self.bootstrap_servers or f"{self.shared_address}:{self.kafka_port}"

    # -- addresses ----------------------------------------------------------------------------
    # One rule for every mode: a VM's services bind to the VM's address and everyone reaches them
    # there; the shared services bind to the shared address. Plain local mode: all 127.0.0.1.
    @property
    def netns(self) -> bool:
        return self.isolation == "netns"

    def _subnet_host(self, n: int) -> str:
        return str(self.netns_subnet.network_address + n)

    @property
    def bridge_address(self) -> str:
        """The host's own address on the namespaces' bridge (payctl reaches every service from it)."""
        return self._subnet_host(1)

    @property
    def shared_address(self) -> str:
        if self.netns:
            return self._subnet_host(2)
        return str(self.shared_host) if self.shared_host else "127.0.0.1"

    def vm_address(self, vm_name: str) -> str:
        vm = self.vm(vm_name)
        if self.netns:
            return self._subnet_host(10 + self.vms.index(vm) + 1)
        return str(vm.host) if vm.host else "127.0.0.1"

    def address_of(self, svc: PlannedService) -> str:
        return self.vm_address(svc.vm) if svc.vm else self.shared_address

    @property
    def gateway_host(self) -> str:
        """Where payctl, k6 and users reach the gateway: loopback on the machine running it, in
        every mode (netns publishes it there; real VMs bind the shared host's address as well)."""
        return "127.0.0.1"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.shared_address}:{self.prometheus_port}"

    @property
    def console_host(self) -> str:
        """netns publishes the console on the host's loopback beside the gateway."""
        return "127.0.0.1" if self.netns else self.shared_address

    def peer_addresses(self) -> list[str]:
        """Every address a shard may see a client connect from (the app user is granted to these)."""
        found = ["127.0.0.1", *(self.vm_address(vm.name) for vm in self.vms), self.shared_address]
        if self.netns:
            found.append(self.bridge_address)
        return list(dict.fromkeys(found))

    # -- network namespaces (isolation = "netns") ----------------------------------------------
    @property
    def netns_roles(self) -> list[str]:
        """One namespace per VM, then one for the shared services."""
        return [vm.name for vm in self.vms] + ["shared"]

    def netns_name(self, role: str) -> str:
        return f"{self.name}-{role}"

    def role_of(self, svc: PlannedService) -> str:
        return svc.vm or "shared"

    def role_address(self, role: str) -> str:
        return self.shared_address if role == "shared" else self.vm_address(role)

    @property
    def link_prefix(self) -> str:
        """Host-side interface names must fit 15 bytes and be recognisable: pc<hash of the name>."""
        return "pc" + hashlib.sha1(self.name.encode()).hexdigest()[:5]

    def link_name(self, role: str) -> str:
        if role == "bridge":
            return f"{self.link_prefix}-br"
        if role == "shared":
            return f"{self.link_prefix}-sh"
        return f"{self.link_prefix}-v{self.vms.index(self.vm(role)) + 1}"

    @property
    def local_kafka(self) -> bool:
        return self.bootstrap_servers is None

    def shard_socket_usable(self, shard_vm: str, client_vm: str) -> bool:
        """A VM's services reach a shard through its Unix socket when it runs on their machine,
        except with network namespaces, whose link faults (a partition, a slow link) the socket
        would bypass."""
        return not self.netns and self.vm_address(shard_vm) == self.vm_address(client_vm)

    def platform_settings(self, broker_is_tansu: bool) -> Settings:
        """The settings the services get: the gateway's address among the ingest's trusted proxies,
        unless the user listed them. The consumers' log-end watch exists for the local broker
        (tansu answers a fetch past a log's end with nothing); against Kafka, which answers "out of
        range", it is off unless the user set it."""
        settings = self.settings
        if "auth_trusted_proxies" not in settings.model_fields_set:
            # the gateway reaches the ingest from the shared services' address
            proxies = list(dict.fromkeys([*settings.auth_trusted_proxies, self.shared_address]))
            settings = settings.model_copy(update={"auth_trusted_proxies": proxies})
        if broker_is_tansu or "consumer_log_lost_grace_s" in settings.model_fields_set:
            return settings
        return settings.model_copy(update={"consumer_log_lost_grace_s": None})

    def check_api_auth(self) -> None:
        """`api_auth = "off"` only where nobody but this machine reaches the gateway or an ingest:
        every address the stack listens on must be loopback (UsageError otherwise)."""
        if self.settings.api_auth == "on":
            return
        addresses = [self.shared_address, *(self.vm_address(vm.name) for vm in self.vms)]
        exposed = [a for a in addresses if not ip_address(a).is_loopback]
        if exposed:
            raise UsageError(f'api_auth = "off" is only allowed on a loopback gateway, but this stack listens on '
                             f'{exposed[0]}: set api_auth = "on" (or remove it)')

    def shard_name(self, index: int) -> str:
        return f"shard{index + 1}"

    def vm(self, name: str) -> VmSpec:
        for vm in self.vms:
            if vm.name == name:
                return vm
        raise UsageError(f"unknown vm '{name}'", f"known: {', '.join(v.name for v in self.vms)}")

    def all_ports(self) -> list[tuple[str, int]]:
        ports = [("gateway", self.gateway_port), ("kafka", self.kafka_port),
                 ("prometheus", self.prometheus_port), ("console", self.console_port)]
        for i, vm in enumerate(self.vms):
            ports += [
                (self.shard_name(i), vm.db_port), (f"ingest-{vm.name}", vm.ingest_port),
                (f"relay-{vm.name}", vm.relay_port), (f"ledger-{vm.name}", vm.ledger_port),
                (f"refund-{vm.name}", vm.refund_port), (f"settlement-{vm.name}", vm.settlement_port),
            ]
        return ports

    def with_port_offset(self, offset: int) -> Topology:
        """The same topology shifted by `offset` on every port (tests run beside a user's stack)."""
        data = self.model_dump()
        for key in ("gateway_port", "kafka_port", "prometheus_port", "console_port"):
            data[key] += offset
        for vm in data["vms"]:
            for key in list(vm):
                if key.endswith("_port"):
                    vm[key] += offset
        return Topology.model_validate(data)

    def state_path(self, base: Path | None = None) -> Path:
        path = self.state_dir if self.state_dir.is_absolute() else (base or Path.cwd()) / self.state_dir
        return path.resolve()


def find_config(explicit: Path | None) -> Path | None:
    """--config, else $PAYCTL_CONFIG, else ./stack.toml when there is one. Either may name a folder:
    its stack.toml, or the defaults anchored there when it has none."""
    if explicit is not None:
        return explicit
    env = os.environ.get("PAYCTL_CONFIG")
    if env:
        return Path(env)
    default = Path.cwd() / "stack.toml"
    return default if default.exists() else None


def load_topology(path: Path | None = None) -> Topology:
    """Built-in defaults, overridden by stack.toml when there is one. The state folder is always
    absolute, anchored at the folder that holds stack.toml (or the folder the defaults apply to),
    so every service and every command reads the same one from any working folder."""
    source = find_config(path)
    anchor = Path.cwd()
    if source is not None and source.is_dir():
        anchor = source
        source = source / "stack.toml" if (source / "stack.toml").is_file() else None
    if source is None:
        defaults = Topology()
        state = defaults.state_dir if defaults.state_dir.is_absolute() else anchor / defaults.state_dir
        return with_running_stack(defaults.model_copy(update={"state_dir": state.resolve()}))
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read topology file {source}: {exc.strerror}",
                         "check the path or remove --config to use the defaults") from exc
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source} is not valid TOML: {exc}") from exc
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'topology'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"{source}: {problems}") from exc
    if not topo.state_dir.is_absolute():
        topo = topo.model_copy(update={"state_dir": (source.parent / topo.state_dir).resolve()})
    return with_running_stack(topo)


def with_isolation(topo: Topology, isolation: str) -> Topology:
    """The topology with another isolation (validated: `payctl up --isolation`)."""
    try:
        return Topology.model_validate({**topo.model_dump(), "isolation": isolation})
    except ValidationError as exc:
        raise UsageError(f"--isolation {isolation}: {exc.errors()[0]['msg']}", "use none or netns") from exc


def with_running_stack(topo: Topology) -> Topology:
    """The topology as the running stack was started: its backend and isolation (until `down`)."""
    return with_running_backend(with_running_isolation(topo))


def with_running_backend(topo: Topology) -> Topology:
    """A stack started with `up --backend X` keeps X for every later command until `down`."""
    try:
        running = (topo.state_path() / "backend").read_text().strip()
    except OSError:
        return topo
    if running not in ("local", "compose") or running == topo.backend:
        return topo
    return topo.model_copy(update={"backend": running})


def with_running_isolation(topo: Topology) -> Topology:
    """A stack started with `up --isolation X` keeps X for every later command until `down`."""
    try:
        running = (topo.state_path() / "isolation").read_text().strip()
    except OSError:
        return topo
    if running not in ("none", "netns") or running == topo.isolation:
        return topo
    try:
        return with_isolation(topo, running)
    except UsageError:
        return topo  # stack.toml changed since (e.g. real-VM hosts): its own setting wins; `down` still works


def dump_toml(topo: Topology) -> str:
    """The topology as a stack.toml (round-trips through load_topology)."""
    import tomli_w

    return tomli_w.dumps(topo.model_dump(mode="json", exclude_none=True))
