"""The service plan: one entry adds a platform process to every file both backends render, the
scrape list is one list whose backends differ only in addresses, and a port clash is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from payctl.stack import compose_render, render
from payctl.stack.binaries import Binaries
from payctl.stack.paths import StatePaths
from payctl.stack.plan import PLATFORM_PROCESSES, ModuleCommand, VmProcess, plan_for, scrape_jobs, stop_groups
from payctl.stack.topology import Topology

BINS = Binaries({n: f"/bin/{n}" for n in ("mariadbd", "haproxy", "tansu", "prometheus", "supervisord")})
# A consumer the platform does not have: its port 50 above each VM's settlement port.
FRAUD = VmProcess("fraud", lambda vm: vm.settlement_port + 50, "payflow.consumers.fraud")


def test_one_entry_adds_a_consumer_to_supervisor_prometheus_and_compose() -> None:
    topo = Topology()
    plan = plan_for(topo, (*PLATFORM_PROCESSES, FRAUD))
    ports = {vm.name: vm.settlement_port + 50 for vm in topo.vms}

    conf = render.supervisord_conf(plan, StatePaths(Path("/s")), BINS)
    for vm in topo.vms:
        section = conf.split(f"[program:fraud-{vm.name}]\n", 1)[1].split("\n[", 1)[0]
        assert "-m payflow.consumers.fraud" in section
        assert f'PAYFLOW_CONFIG="/s/{vm.name}/payflow.json"' in section

    local_jobs = yaml.safe_load(render.prometheus_yml(plan))["scrape_configs"]
    (fraud_job,) = [j for j in local_jobs if j["job_name"] == "fraud"]
    assert [c["targets"] for c in fraud_job["static_configs"]] == [[f"127.0.0.1:{p}"] for p in ports.values()]

    compose: dict[str, Any] = yaml.safe_load(compose_render.compose_yml(plan))
    for vm in topo.vms:
        svc = compose["services"][f"fraud-{vm.name}"]
        assert svc["command"] == ["python", "-m", "payflow.consumers.fraud"]
        assert svc["network_mode"] == f"service:{vm.name}"
        assert f"127.0.0.1:{ports[vm.name]}:{ports[vm.name]}" in compose["services"][vm.name]["ports"]
        assert f":{ports[vm.name]}/health" in svc["healthcheck"]["test"][-1]
        assert set(svc["depends_on"]) == {vm.name, "schema", "kafka"}
    compose_jobs = yaml.safe_load(compose_render.prometheus_yml(plan))["scrape_configs"]
    (fraud_job,) = [j for j in compose_jobs if j["job_name"] == "fraud"]
    assert [c["targets"] for c in fraud_job["static_configs"]] == \
        [[f"{compose_render.vm_address(topo, vm)}:{p}"] for vm, p in ports.items()]


def test_without_the_entry_there_is_no_such_consumer() -> None:
    plan = plan_for(Topology())
    assert not plan.of_kind("fraud")
    assert "fraud" not in compose_render.compose_yml(plan)


def test_both_backends_scrape_the_same_jobs_and_differ_only_in_addresses() -> None:
    topo = Topology()
    plan = plan_for(topo)

    def without_addresses(address: Any) -> list[tuple[str, list[tuple[str, int]]]]:
        return [(j.name, [(t.service, t.port) for t in j.targets]) for j in scrape_jobs(plan, address)]

    local = without_addresses(topo.address_of)
    assert local == without_addresses(lambda s: compose_render.address_of(topo, s))
    assert [name for name, _ in local] == ["ingest", "relay", "ledger", "refund", "settlement"]


def test_the_ingest_is_served_with_its_vms_workers_and_threads() -> None:
    topo = Topology()
    topo = topo.model_copy(update={"vms": [topo.vms[0].model_copy(update={"ingest_workers": 3}), topo.vms[1]]})
    ingest = plan_for(topo).of_kind("ingest")[0]
    assert ingest.command is not None
    argv = ingest.command.argv("py", "10.0.0.1", ingest.port)
    assert argv[argv.index("--workers") + 1] == "3" and argv[argv.index("--host") + 1] == "10.0.0.1"
    relay = plan_for(topo).of_kind("relay")[0]
    assert relay.command == ModuleCommand("payflow.outbox.relay_process")


def test_a_process_on_a_port_already_planned_is_refused() -> None:
    clash = VmProcess("fraud", lambda vm: vm.ledger_port, "payflow.consumers.fraud")
    with pytest.raises(ValueError, match="planned for both ledger-vm1 and fraud-vm1"):
        plan_for(Topology(), (*PLATFORM_PROCESSES, clash))


def test_down_stops_every_service_once_front_first_and_shards_last() -> None:
    plan = plan_for(Topology())
    groups = stop_groups(plan)
    names = [n for _label, group in groups for n in group]
    assert sorted(names) == sorted(s.name for s in plan.services)  # each exactly once
    assert groups[0][1] == ["gateway", "prometheus", "console"]
    assert groups[-1] == ("shard1, shard2", ["shard1", "shard2"])
    assert groups[-2] == ("broker", ["kafka"])
    assert [label.split()[0] for label, _ in groups[1:-2]] == ["vm1", "vm2"]
