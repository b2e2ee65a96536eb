"""Network-namespace isolation, pure parts: addresses per isolation mode, namespace/link plans, network-fault plans,
the chaos model's link actions and their undo, and the CLI's refusals (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from payctl.chaos.model import Experiment, network_fault_kinds, parse_action, uses_network
from payctl.chaos.undo import UndoLog, describe, undo_for
from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack import netns, render
from payctl.stack.binaries import Binaries
from payctl.stack.local import LocalBackend
from payctl.stack.netfaults import LinkFault, plan_apply, plan_heal, require_fault_support, rules
from payctl.stack.paths import StatePaths
from payctl.stack.plan import plan_for, services
from payctl.stack.topology import Topology

BINS = Binaries({n: f"/bin/{n}" for n in ("mariadbd", "haproxy", "tansu", "prometheus", "supervisord",
                                           "mariadb-install-db", "k6", "ip")})
NETNS = Topology(isolation="netns", netns_subnet="10.9.8.0/24")  # type: ignore[arg-type]


def test_plain_mode_keeps_everything_on_loopback() -> None:
    topo = Topology()
    assert {topo.address_of(s) for s in services(topo)} == {"127.0.0.1"}
    assert topo.kafka_bootstrap == "127.0.0.1:19092"


def test_netns_gives_each_vm_and_the_shared_services_their_own_address() -> None:
    assert NETNS.bridge_address == "10.9.8.1"
    assert NETNS.shared_address == "10.9.8.2"
    assert [NETNS.vm_address(vm.name) for vm in NETNS.vms] == ["10.9.8.11", "10.9.8.12"]
    assert NETNS.kafka_bootstrap == "10.9.8.2:19092"
    assert NETNS.gateway_url == "http://127.0.0.1:8080"  # published on the host's loopback
    assert set(NETNS.peer_addresses()) >= {"10.9.8.1", "10.9.8.11", "10.9.8.12"}


def test_link_names_fit_the_kernels_limit_and_are_recognisable() -> None:
    topo = Topology(name="a-very-long-topology-name-for-ci", isolation="netns")
    names = [topo.link_name(r) for r in [*topo.netns_roles, "bridge"]]
    assert all(len(n) + 1 <= 15 for n in names)  # +1: the namespace end is <name>p before its rename
    assert len(set(names)) == len(names) and all(n.startswith(topo.link_prefix + "-") for n in names)
    assert Topology(name="other").link_prefix != topo.link_prefix


@pytest.mark.parametrize(("data", "field"), [
    ({"netns_subnet": "10.9.8.0/25"}, "private /24"),
    ({"netns_subnet": "8.8.8.0/24"}, "private /24"),
    ({"isolation": "netns", "shared_host": "192.168.1.5"}, "drop `host`"),
    ({"shared_vm": "vm9"}, "shared_vm"),
])
def test_bad_network_settings_are_refused_with_the_rule(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Topology.model_validate(data)


def test_real_vms_bind_their_host_address_and_split_the_shared_services() -> None:
    topo = Topology.model_validate({"shared_host": "192.168.56.11", "shared_vm": "vm1", "vms": [
        {**vm.model_dump(), "host": host} for vm, host in zip(Topology().vms, ("192.168.56.11", "192.168.56.12"),
                                                              strict=True)]})
    assert topo.vm_address("vm2") == "192.168.56.12"
    assert topo.kafka_bootstrap == "192.168.56.11:19092"
    vm2_only = [s.name for s in services(topo, "vm2")]
    assert "kafka" not in vm2_only and "gateway" not in vm2_only and "ingest-vm2" in vm2_only
    assert {"kafka", "gateway", "prometheus"} <= {s.name for s in services(topo, "vm1")}
    cfg = render.platform_config(plan_for(topo), StatePaths(Path("/s")), "vm1")
    assert cfg.bind_host == "192.168.56.11"
    assert [s.host for s in cfg.shards] == ["192.168.56.11", "192.168.56.12"]
    gateway = render.haproxy_cfg(plan_for(topo), Path("/x/503.http"))
    assert "bind 127.0.0.1:8080" in gateway and "bind 192.168.56.11:8080" in gateway
    assert "server ingest-vm2 192.168.56.12:18082 check" in gateway


def test_netns_plan_makes_a_bridge_and_one_veth_per_namespace() -> None:
    plan = netns.plan_bridge(NETNS) + [c for r in NETNS.netns_roles for c in netns.plan_role(NETNS, r)]
    text = [" ".join(c) for c in plan]
    assert f"ip link add {NETNS.link_name('bridge')} type bridge" in text
    assert "ip addr add 10.9.8.1/24 dev " + NETNS.link_name("bridge") in text
    for role in ("vm1", "vm2", "shared"):
        assert f"ip netns add payctl-{role}" in text
        assert f"ip -n payctl-{role} addr add {NETNS.role_address(role)}/24 dev eth0" in text


def test_netns_services_run_inside_their_namespace_and_the_gateway_reaches_in() -> None:
    conf = render.supervisord_conf(plan_for(NETNS), StatePaths(Path("/s")), BINS)
    assert "/bin/ip netns exec payctl-vm1 /bin/mariadbd" in conf
    assert "/bin/ip netns exec payctl-shared /bin/tansu" in conf
    assert "--listener-url tcp://10.9.8.2:19092" in conf
    assert "netns exec payctl-shared /bin/haproxy" not in conf  # the gateway publishes on the host
    cfg = render.haproxy_cfg(plan_for(NETNS), Path("/x/503.http"))
    assert "bind 127.0.0.1:8080\n" in cfg
    assert "server ingest-vm1 10.9.8.11:18081 namespace payctl-shared check" in cfg
    assert "retry-on conn-failure 503" in cfg and "option http-buffer-request" in cfg
    assert "bind 127.0.0.1:8090" in cfg  # the console, published too


def test_a_partition_drops_both_directions_on_the_right_namespaces() -> None:
    fault = LinkFault("drop", "vm2", "kafka")
    found = rules(NETNS, "vm2", "kafka", "both")
    assert [r.namespace for r in found] == ["payctl-vm2", "payctl-shared"]
    assert "10.9.8.2/32" in found[0].match and "19092" in found[0].match  # to the broker
    assert found[1].match[-1] == "10.9.8.12/32"  # back to vm2 only: vm1 keeps its link
    text = [" ".join(c) for c in plan_apply(NETNS, fault)]
    assert sum("blackhole" in t for t in text) == 2
    assert [r.namespace for r in rules(NETNS, "vm2", "kafka", "outbound")] == ["payctl-vm2"]
    assert [r.namespace for r in rules(NETNS, "vm2", "kafka", "inbound")] == ["payctl-shared"]
    heal = [" ".join(c) for c in plan_heal(NETNS, "vm2", "kafka")]
    assert len(heal) == 4 and all(" del " in h for h in heal)


def test_a_bandwidth_limit_shapes_only_its_link() -> None:
    text = " ".join(" ".join(c) for c in plan_apply(NETNS, LinkFault("rate", "vm1", "shard2", rate_kbit=64)))
    assert "rate 64kbit ceil 64kbit" in text and "blackhole" not in text and "netem" not in text


def test_link_faults_need_a_link_and_a_netns_stack() -> None:
    with pytest.raises(UsageError, match="no link"):
        rules(NETNS, "vm2", "shard2", "both")
    with pytest.raises(UsageError, match="unknown service"):
        rules(NETNS, "vm2", "nosuch", "both")
    with pytest.raises(UsageError, match="isolation"):
        rules(Topology(), "vm2", "kafka", "both")
    with pytest.raises(EnvironmentProblem, match="isolation") as caught:
        require_fault_support(Topology(), {"drop"})
    assert caught.value.exit_code == 2
    require_fault_support(Topology(), set())  # an experiment without network faults needs nothing


def test_link_actions_parse_and_their_undo_heals_the_link() -> None:
    action = {"type": "partition", "source": "vm2", "target": "kafka", "direction": "outbound"}
    assert parse_action(action).direction == "outbound"
    assert undo_for(action) == {"type": "heal_link", "source": "vm2", "target": "kafka"}
    assert describe(undo_for(action) or {}) == "heal_link vm2 kafka"
    log = UndoLog(run="r", experiment="e")
    log.record(action)
    assert log.settled_by({"type": "heal_link", "source": "vm2", "target": "kafka"}, "rollbacks[0]")
    assert not log.pending()
    with pytest.raises(ValueError, match="rate_kbit"):
        parse_action({"type": "limit_bandwidth", "source": "vm2", "target": "kafka", "rate_kbit": 1})
    exp = Experiment.model_validate({"title": "t", "method": [
        action, {"type": "add_latency", "source": "vm1", "target": "kafka", "delay_ms": 5}]})
    assert uses_network(exp) and network_fault_kinds(exp) == {"drop", "delay"}


def test_up_refuses_an_unknown_isolation(tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(config), "up", "--isolation",
                             "bridge"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--isolation bridge" in result.stderr and "none or netns" in result.stderr
    assert not (tmp_path / "state").exists()  # nothing was written


def test_netns_without_root_or_iproute2_exits_2_before_anything(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    backend = LocalBackend(Topology(state_dir=tmp_path / "state", isolation="netns"))
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root") as caught:
        backend.up()
    assert caught.value.exit_code == 2
    monkeypatch.setattr(netns.shutil, "which", lambda _name: None)
    monkeypatch.setattr(netns.os.path, "exists", lambda _p: False)
    with pytest.raises(EnvironmentProblem, match="iproute2"):
        backend.up()
    assert not (tmp_path / "state").exists()


def test_another_stack_on_the_same_subnet_is_detected() -> None:
    from payctl.stack.netns import foreign_subnet_users

    output = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
              "7: pcaaaaa-br    inet 10.9.8.1/24 brd 10.9.8.255 scope global pcaaaaa-br\n"
              "9: pcbbbbb-br    inet 10.9.9.1/24 scope global pcbbbbb-br\n")
    assert foreign_subnet_users(output, "10.9.8.0/24", {"pcbbbbb-br"}) == ["pcaaaaa-br 10.9.8.1"]
    assert foreign_subnet_users(output, "10.9.8.0/24", {"pcaaaaa-br"}) == []


def test_two_links_into_one_namespace_never_share_a_class() -> None:
    slots = {(r.namespace, r.slot) for target in ("kafka", "prometheus", "console")
             for r in rules(NETNS, "vm2", target, "both")}
    slots |= {(r.namespace, r.slot) for r in rules(NETNS, "vm1", "kafka", "both")}
    assert len(slots) == 8  # 4 links × 2 directions, all distinct


def test_a_vm_may_not_take_the_shared_namespaces_name() -> None:
    with pytest.raises(ValueError, match="shared"):
        Topology.model_validate({"vms": [{**Topology().vms[0].model_dump(), "name": "shared"}]})


def test_a_remembered_isolation_that_no_longer_fits_the_file_is_ignored(tmp_path: Path) -> None:
    from payctl.stack.topology import load_topology

    config = tmp_path / "stack.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\nshared_host = "192.168.56.11"\n')
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "isolation").write_text("netns\n")
    assert load_topology(config).isolation == "none"  # netns and shared_host exclude each other


def test_doctor_explains_what_a_forward_drop_means_for_netns() -> None:
    from payctl.ops.doctor import forwarding_note

    docker = "-P FORWARD DROP\n-N DOCKER\n-A FORWARD -j DOCKER-USER\n"
    assert "Docker's chains and FORWARD policy DROP" in forwarding_note(docker)
    assert "adds an ACCEPT rule for its own bridge" in forwarding_note(docker)
    assert forwarding_note("-P FORWARD ACCEPT\n").startswith("FORWARD policy ACCEPT: nothing drops")
    assert "unreadable" in forwarding_note("")


def test_the_forward_rule_names_only_the_stacks_own_bridge() -> None:
    from payctl.stack.netns import forward_rule
    from payctl.stack.topology import Topology

    topo = Topology.model_validate({"name": "pcx", "state_dir": "/tmp/pcx"})
    rule = forward_rule(topo)
    bridge = topo.link_name("bridge")
    assert rule[:5] == ["FORWARD", "-i", bridge, "-o", bridge] and rule[-2:] == ["-j", "ACCEPT"]


def test_network_faults_on_the_compose_backend_say_why_they_cannot_run():
    with pytest.raises(EnvironmentProblem, match="compose backend's containers share one Docker network"):
        require_fault_support(Topology(backend="compose"), {"drop"})
