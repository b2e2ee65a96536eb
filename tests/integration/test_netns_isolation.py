"""Each VM in its own network namespace (`payctl up --isolation netns`), on ports beside the session
stack's, so it runs in any order. The walking-skeleton and Kafka-outage checks are collected
again here and run against the netns stack (this module's `stack` fixture overrides the
session's); then the network-fault experiments, `chaos recover` after a killed run, the kernel
refusing netem, and `down` leaving no namespace, link or address behind. All of it beside a running
Docker engine where one can run (the session's `docker_engine`: dockerd with its chains and bridge
filtering), and under FORWARD policy DROP in any case, as on a machine where Docker runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from payctl.stack.local import LocalBackend
from payctl.stack.netfaults import LinkFaults
from payctl.stack.topology import Topology, dump_toml, load_topology
from tests.integration.conftest import DockerEngine, Stack, make_topology
from tests.integration.test_chaos import SHORT
from tests.integration.test_chaos import test_kafka_outage_passes_with_every_invariant as test_kafka_outage_experiment
from tests.integration.test_faults import (
    test_breaker_closes_by_itself_without_new_traffic,
    test_outage_longer_than_the_retry_budget_kills_no_event,
)
from tests.integration.test_walking_skeleton import (
    test_both_ingest_instances_serve_through_the_gateway,
    test_killed_relay_restarted_publishes_nothing_twice_into_the_ledger,
    test_payment_lands_on_its_shard_and_reaches_the_ledger_balanced,
    test_second_up_is_a_no_op,
)

pytestmark = pytest.mark.integration

__all__ = [  # collected again, against the netns stack
    "test_both_ingest_instances_serve_through_the_gateway", "test_breaker_closes_by_itself_without_new_traffic",
    "test_kafka_outage_experiment", "test_killed_relay_restarted_publishes_nothing_twice_into_the_ledger",
    "test_outage_longer_than_the_retry_budget_kills_no_event",
    "test_payment_lands_on_its_shard_and_reaches_the_ledger_balanced", "test_second_up_is_a_no_op",
]
NETNS_SUBNET = "10.213.7.0/24"
FAST = {"load_rate": 20, "settle_s": 30, "reconcile_grace_s": 3, "drain_timeout_s": 120}


def _netns_topology(state: Path) -> Topology:
    base = make_topology(state).with_port_offset(1000)  # beside the session stack's ports
    return Topology.model_validate({**base.model_dump(), "name": "pcnettest", "netns_subnet": NETNS_SUBNET})


def _ours(topo: Topology) -> tuple[list[str], list[str]]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    namespaces = [line.split()[0] for line in names.splitlines() if line.startswith(f"{topo.name}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    ours = [line.split(":")[1].strip() for line in links.splitlines() if topo.link_prefix in line]
    return namespaces, ours


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, check=False)


def _forward_policy() -> str:
    return _iptables("-S", "FORWARD").stdout.splitlines()[0].split()[-1]  # "-P FORWARD ACCEPT"


@pytest.fixture(scope="module")
def forward_drop(docker_engine: DockerEngine) -> Iterator[None]:
    """Beside the session's Docker engine when one runs, and in any case what dockerd does on start:
    bridged traffic passes iptables (bridge-nf-call-iptables=1, set on these machines) and the
    FORWARD policy is DROP. Every test of this module runs under it."""
    if shutil.which("iptables") is None:
        pytest.fail("iptables is not installed: ./run install installs it (the netns mode needs it beside Docker)")
    before = _forward_policy()
    assert _iptables("-P", "FORWARD", "DROP").returncode == 0
    try:
        yield
    finally:
        _iptables("-P", "FORWARD", before)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, forward_drop: None) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("netns") / "state"
    topo = _netns_topology(state)
    config = state.parent / "stack.toml"
    config.write_text(dump_toml(topo))  # isolation "none" in the file: the flag decides
    up = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(config), "up", "--isolation",
                         "netns", "--json"], capture_output=True, text=True, timeout=300)
    running = load_topology(config)  # the running stack's isolation is remembered
    backend = LocalBackend(running)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert running.netns
        yield Stack(backend)
    finally:
        backend.down(purge=True)


def test_every_vm_has_its_own_address_and_cross_vm_calls_cross_a_link(stack: Stack) -> None:
    topo = stack.topo
    for vm in topo.vms:
        listening = subprocess.run(["ip", "netns", "exec", topo.netns_name(vm.name), "ss", "-Hltn"],
                                   capture_output=True, text=True, check=True).stdout
        for port in (vm.db_port, vm.ingest_port, vm.relay_port, vm.ledger_port):
            assert f"{topo.vm_address(vm.name)}:{port}" in listening, (vm.name, port, listening)
    # shard2 is reachable from VM1's namespace only at VM2's address (over the bridge), not on loopback
    vm2 = topo.vms[1]
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()"
    ns1 = ["ip", "netns", "exec", topo.netns_name("vm1"), sys.executable, "-c", probe]
    assert subprocess.run([*ns1, topo.vm_address("vm2"), str(vm2.db_port)]).returncode == 0
    assert subprocess.run([*ns1, "127.0.0.1", str(vm2.db_port)], capture_output=True).returncode != 0
    # the gateway is published on the machine's loopback
    assert stack.api.authorize("MERCHANT-5").status_code == 200
    status = json.loads(stack.payctl("status", "--json", check=True).stdout)
    assert all(row["healthy"] for row in status), status


def _chaos(stack: Stack, name: str, variables: dict[str, object], reports: Path) -> tuple[int, str]:
    # every experiment records what its clients were told and checks it at the end (exit 1 on an anomaly)
    args = ["chaos", "run", name, "--reports", str(reports), "--history", "--history-rate", "20"]
    for key, value in variables.items():
        args += ["--var", f"{key}={value}"]
    result = stack.payctl(*args)
    return result.returncode, result.stdout + result.stderr


def test_partition_vm2_from_the_broker(stack: Stack, tmp_path: Path) -> None:
    code, out = _chaos(stack, "partition-vm2-broker", {**FAST, **SHORT, "partition_s": 10}, tmp_path)
    assert code == 0, out[-3000:]
    assert "hypothesis held" in out and "client-side history: valid" in out, out[-3000:]
    assert LinkFaults(stack.topo).active() == {stack.topo.netns_name(r): [] for r in stack.topo.netns_roles}


def test_partition_vm1_from_shard2(stack: Stack, tmp_path: Path) -> None:
    # enough requests in the window for its 99 % floor: a request in flight to shard2 at the cut is
    # answered 504 (outcome unknown, never retried), one of the 80 odd ones at 20/s was 1.2 %
    code, out = _chaos(stack, "partition-shard2", {**FAST, "load_rate": 50, "partition_s": 8}, tmp_path)
    assert code == 0, out[-3000:]
    assert "hypothesis held" in out and "client-side history: valid" in out, out[-3000:]


def test_slow_link_to_the_broker(stack: Stack, tmp_path: Path) -> None:
    code, out = _chaos(stack, "slow-link", {**FAST, "slow_s": 8}, tmp_path)
    assert code == 0, out[-3000:]
    assert "client-side history: valid" in out, out[-3000:]


def test_latency_is_refused_on_a_kernel_without_netem(stack: Stack, tmp_path: Path) -> None:
    code, out = _chaos(stack, "link-latency", FAST, tmp_path)
    assert code == 2, out
    assert "unsupported on this kernel" in out
    assert not list(tmp_path.glob("chaos-*"))  # refused before anything ran
    assert all(not classes for classes in LinkFaults(stack.topo).active().values())


KILLED_PARTITION = """
title: a partition whose run is killed
method:
  - {id: cut, type: partition, source: vm2, target: kafka}
  - {type: wait, seconds: 600}
rollbacks:
  - {type: heal_link, source: vm2, target: kafka}
"""


def test_recover_heals_the_network_after_a_killed_run(stack: Stack, tmp_path: Path) -> None:
    experiment = tmp_path / "killed.yaml"
    experiment.write_text(KILLED_PARTITION)
    faults = LinkFaults(stack.topo)
    proc = subprocess.Popen([sys.executable, "-m", "payctl.cli.app", "--config", str(stack.config_file), "chaos",
                             "run", str(experiment), "--reports", str(tmp_path / "reports")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack.wait_for(lambda: any(faults.active().values()), timeout=60)
        proc.kill()
        proc.wait(timeout=10)
        time.sleep(0.5)
        assert any(faults.active().values())  # nobody healed it
        result = stack.payctl("chaos", "recover", "--json")
        assert result.returncode == 0, result.stderr + result.stdout
        report = json.loads(result.stdout)
        assert [(s["undo"], s["status"]) for s in report["reverted"]] == [("heal_link vm2 kafka", "reverted")]
        assert not any(faults.active().values())
    finally:
        if proc.poll() is None:
            proc.kill()
        faults.heal_all()


def test_beside_docker_the_stack_opens_its_own_bridge_and_nothing_else(stack: Stack,
                                                                       docker_engine: DockerEngine) -> None:
    """Under FORWARD policy DROP (the module's fixture), beside a running dockerd where one can run,
    the cross-VM calls of every test here went through one ACCEPT rule for this stack's bridge; the
    policy itself is untouched."""
    bridge = stack.topo.link_name("bridge")
    rules = _iptables("-S", "FORWARD").stdout
    if docker_engine.client is None:
        warnings.warn(f"netns tested under FORWARD policy DROP only, not beside dockerd: {docker_engine.why}",
                      stacklevel=1)
    elif docker_engine.started_here:  # this machine's dockerd, on this machine's iptables
        assert docker_engine.client.ping()
        assert "DOCKER" in rules, rules  # Docker's own chains are hooked into FORWARD beside ours
    assert f"-i {bridge} -o {bridge}" in rules and "-j ACCEPT" in rules, rules
    assert _forward_policy() == "DROP"
    for merchant in ("MERCHANT-2", "MERCHANT-3"):  # both shards, across the namespaces
        assert stack.api.authorize(merchant).status_code == 200


def test_down_leaves_no_namespace_link_or_address(stack: Stack) -> None:
    topo = stack.topo
    assert _ours(topo) != ([], [])
    assert stack.payctl("down").returncode == 0
    assert _ours(topo) == ([], [])
    assert topo.link_name("bridge") not in _iptables("-S", "FORWARD").stdout  # its firewall rule went too
    assert _forward_policy() == "DROP"  # and the policy is as payctl found it
    addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert NETNS_SUBNET.rsplit(".", 1)[0] + "." not in addresses
    # leftovers of a crashed run, recognised by name, go too
    subprocess.run(["ip", "netns", "add", topo.netns_name("vm1")], check=True)
    subprocess.run(["ip", "link", "add", topo.link_name("bridge"), "type", "bridge"], check=True)
    assert stack.payctl("down").returncode == 0
    assert _ours(topo) == ([], [])
    # and the default isolation is back: nothing remembered after down
    assert not load_topology(stack.config_file).netns

