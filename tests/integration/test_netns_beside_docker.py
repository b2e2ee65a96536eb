"""netns mode on a machine where Docker runs. Once dockerd has run, bridged traffic passes through
iptables (`bridge-nf-call-iptables=1`) and the FORWARD policy is DROP: traffic between the VMs'
namespaces over payctl's bridge is forwarded traffic and would be dropped. This test sets that
policy itself (what dockerd does), brings a netns stack up, sends payments through it, and checks
that `down` takes payctl's firewall rule away again and leaves the policy as it found it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from payctl.ops.merchants import MerchantKeys
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology, dump_toml, load_topology
from tests.integration.conftest import Api, make_topology

pytestmark = pytest.mark.integration


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, check=False)


def _policy() -> str:
    first = _iptables("-S", "FORWARD").stdout.splitlines()[0]  # "-P FORWARD ACCEPT"
    return first.split()[-1]


@pytest.fixture
def forward_drop() -> Iterator[None]:
    if shutil.which("iptables") is None:
        pytest.fail("iptables is not installed: ./run install installs it (the netns mode needs it beside Docker)")
    before = _policy()
    assert _iptables("-P", "FORWARD", "DROP").returncode == 0
    try:
        yield
    finally:
        _iptables("-P", "FORWARD", before)


def test_a_netns_stack_works_with_forward_policy_drop_and_down_removes_its_rule(
        forward_drop: None, tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = make_topology(state).with_port_offset(1500)
    topo = Topology.model_validate({**base.model_dump(), "name": "pcdocker", "netns_subnet": "10.213.9.0/24"})
    config = tmp_path / "stack.toml"
    config.write_text(dump_toml(topo))
    up = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(config), "up", "--isolation",
                         "netns"], capture_output=True, text=True, timeout=300)
    running = load_topology(config)
    backend = LocalBackend(running)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        bridge = running.link_name("bridge")
        rules = _iptables("-S", "FORWARD").stdout
        assert f"-i {bridge} -o {bridge}" in rules and "-j ACCEPT" in rules, rules
        api = Api(f"{running.gateway_url}/api", MerchantKeys(running))
        for merchant in ("MERCHANT-2", "MERCHANT-3"):  # both shards, across the namespaces
            resp = api.authorize(merchant)
            assert resp.status_code == 200, resp.text
    finally:
        backend.down(purge=True)
    assert running.link_name("bridge") not in _iptables("-S", "FORWARD").stdout
    assert _policy() == "DROP"  # payctl changes no policy: only its own rule came and went
