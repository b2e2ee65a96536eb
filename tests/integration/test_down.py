"""`down` leaves no process of the stack and frees every port; the test brings the session stack back
up (data kept), so it runs in any order."""

from __future__ import annotations

import pytest

from payctl.stack.plan import services
from payctl.stack.probes import port_free
from payctl.stack.supervisor import process_alive

pytestmark = pytest.mark.integration


def test_down_stops_every_process_and_frees_the_ports(stack):
    pids = [s.pid for s in stack.backend.status() if s.pid]
    assert len(pids) == len(services(stack.topo))
    result = stack.payctl("down")  # the command people run: it says what it stopped, group by group
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "✔ stopped gateway, prometheus, console" in lines, result.stdout
    assert "✔ stopped shard1, shard2" in lines and lines[-1] == "stack stopped (data kept)", result.stdout
    assert [line for line in lines if line.startswith("✔ stopped vm")] == [
        f"✔ stopped {vm.name} services ({len([s for s in services(stack.topo) if s.vm == vm.name]) - 1})"
        for vm in stack.topo.vms]
    for pid in pids:
        assert not process_alive(pid), f"pid {pid} survived down"
    for svc in services(stack.topo):
        assert port_free(svc.port), f"{svc.name} port {svc.port} still taken"
    assert (stack.backend.paths.datadir("vm1") / "mysql").is_dir()  # data kept without --purge
    # bring it back so later fixtures' teardown (purge) works on a consistent state
    stack.backend.up()
    assert all(s.healthy for s in stack.backend.status())
