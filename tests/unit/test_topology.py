from pathlib import Path

import pytest

from payctl.errors import UsageError
from payctl.stack.plan import services
from payctl.stack.topology import Topology, load_topology


def test_defaults_have_two_vms_and_gateway_on_8080():
    topo = Topology()
    assert [vm.name for vm in topo.vms] == ["vm1", "vm2"]
    assert topo.gateway_port == 8080
    assert topo.shard_count == 2


def test_service_list_orders_dbs_then_broker_then_workers():
    names = [s.name for s in services(Topology())]
    assert names[:3] == ["shard1", "shard2", "kafka"]
    assert names.index("gateway") > names.index("ingest-vm2")
    assert "relay-vm1" in names and "ledger-vm2" in names


def test_console_is_a_service_on_its_own_port():
    topo = Topology()
    console = [s for s in services(topo) if s.name == "console"]
    assert console and console[0].port == 8090 and console[0].health == "/health"
    assert topo.with_port_offset(1000).console_port == 9090
    assert "console" not in [s.name for s in services(topo.model_copy(update={"console_enabled": False}))]


def test_vm_filter_keeps_shared_services():
    names = [s.name for s in services(Topology(), "vm1")]
    assert "shard2" not in names and "ingest-vm2" not in names
    assert {"shard1", "kafka", "gateway", "ingest-vm1"} <= set(names)


def test_unknown_vm_filter_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown vm 'vm9'"):
        services(Topology(), "vm9")


def test_port_offset_shifts_every_port():
    shifted = Topology().with_port_offset(1000)
    assert shifted.gateway_port == 9080
    assert shifted.vms[1].db_port == Topology().vms[1].db_port + 1000


def test_duplicate_ports_are_rejected(tmp_path: Path):
    f = tmp_path / "stack.toml"
    f.write_text('gateway_port = 19092\n')
    with pytest.raises(UsageError, match="port 19092 is used by both gateway and kafka"):
        load_topology(f)


def test_toml_errors_name_the_file_and_field(tmp_path: Path):
    f = tmp_path / "stack.toml"
    f.write_text('gateway_port = "eighty"\n')
    with pytest.raises(UsageError, match=r"stack.toml: gateway_port"):
        load_topology(f)
    f.write_text("gateway_port = = 1\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_topology(f)
    f.write_text("colour = 'blue'\n")
    with pytest.raises(UsageError, match="colour"):
        load_topology(f)


def test_unreadable_file_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot read topology file"):
        load_topology(tmp_path / "missing.toml")


def test_relative_state_dir_is_relative_to_the_file(tmp_path: Path):
    f = tmp_path / "stack.toml"
    f.write_text('state_dir = "state"\n[settings]\nbreaker_reset_timeout_s = 3\n')
    topo = load_topology(f)
    assert topo.state_dir == (tmp_path / "state").resolve()
    assert topo.settings.breaker_reset_timeout_s == 3


def test_the_state_folder_is_anchored_whatever_the_working_folder(tmp_path, monkeypatch):
    """Without a stack.toml the defaults apply to the current folder; `--config DIR` anchors them at
    DIR (its stack.toml when it has one). The state folder is absolute either way, so a process
    running elsewhere (the console runs inside the state folder) reads the same one."""
    from payctl.stack.topology import load_topology

    checkout = tmp_path / "checkout"
    elsewhere = tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    monkeypatch.delenv("PAYCTL_CONFIG", raising=False)
    monkeypatch.chdir(checkout)
    assert load_topology().state_dir == (checkout / ".payctl").resolve()
    monkeypatch.chdir(elsewhere)
    assert load_topology(checkout).state_dir == (checkout / ".payctl").resolve()
    (checkout / "stack.toml").write_text('state_dir = "state"\n')
    assert load_topology(checkout).state_dir == (checkout / "state").resolve()
    monkeypatch.setenv("PAYCTL_CONFIG", str(checkout))
    assert load_topology().state_dir == (checkout / "state").resolve()
