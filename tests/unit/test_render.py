import json
from pathlib import Path

from payctl.stack import render
from payctl.stack.binaries import Binaries
from payctl.stack.paths import StatePaths
from payctl.stack.plan import plan_for
from payctl.stack.topology import Topology

BINS = Binaries({n: f"/bin/{n}" for n in ("mariadbd", "haproxy", "tansu", "prometheus", "supervisord",
                                           "mariadb-install-db", "k6")})


def test_haproxy_rewrites_prefix_and_lists_every_ingest():
    topo = Topology().with_port_offset(5)
    cfg = render.haproxy_cfg(plan_for(topo), Path("/x/503.http"))
    assert "bind 127.0.0.1:8085" in cfg
    assert "regsub(^/api/,/)" in cfg
    assert "retry-on conn-failure" in cfg
    for vm in topo.vms:
        assert f"server ingest-{vm.name} 127.0.0.1:{vm.ingest_port} check maxconn 64" in cfg  # 8 × 2 workers × 4
    assert "timeout queue 10s" in cfg
    assert "on-marked-down" not in cfg  # a DOWN mark never cuts requests in progress


def test_the_gateway_holds_at_most_eight_requests_per_instance_thread():
    topo = Topology()
    topo = topo.model_copy(update={"vms": [topo.vms[0].model_copy(update={"ingest_workers": 3, "ingest_threads": 5}),
                                           topo.vms[1]]})
    cfg = render.haproxy_cfg(plan_for(topo), Path("/x/503.http"))
    assert "server ingest-vm1 127.0.0.1:18081 check maxconn 120" in cfg
    assert "server ingest-vm2 127.0.0.1:18082 check maxconn 64" in cfg


def test_supervisor_programs_come_from_the_topology(tmp_path):
    topo = Topology()
    conf = render.supervisord_conf(plan_for(topo), StatePaths(tmp_path), BINS)
    for name in ("shard1", "shard2", "kafka", "ingest-vm1", "relay-vm2", "ledger-vm1", "gateway"):
        assert f"[program:{name}]" in conf
    assert "--listener-url tcp://127.0.0.1:19092" in conf
    assert "--host 127.0.0.1 --port 18082" in conf  # ingest-vm2 bind


def test_external_kafka_means_no_local_broker(tmp_path):
    topo = Topology(bootstrap_servers="127.0.0.1:9092")
    conf = render.supervisord_conf(plan_for(topo), StatePaths(tmp_path), BINS)
    assert "[program:kafka]" not in conf
    assert render.platform_config(plan_for(topo), StatePaths(tmp_path), "vm1").bootstrap_servers == "127.0.0.1:9092"


def test_platform_config_points_every_vm_at_every_shard(tmp_path):
    topo = Topology()
    cfg = render.platform_config(plan_for(topo), StatePaths(tmp_path), "vm2")
    assert cfg.shard_index == 1
    assert [s.port for s in cfg.shards] == [vm.db_port for vm in topo.vms]
    assert json.loads(cfg.model_dump_json())["shards"][0]["password_file"].endswith("secrets/vm1.password")


def test_services_reach_shards_on_their_machine_through_the_socket_and_never_across_namespaces(tmp_path):
    paths = StatePaths(tmp_path)
    one_machine = render.platform_config(plan_for(Topology()), paths, "vm2")
    assert [s.unix_socket for s in one_machine.shards] == [paths.db_socket("vm1"), paths.db_socket("vm2")]
    # link faults sit between namespaces: a socket would bypass a partition
    netns = Topology(isolation="netns", netns_subnet="10.9.8.0/24")  # type: ignore[arg-type]
    assert [s.unix_socket for s in render.platform_config(plan_for(netns), paths, "vm1").shards] == [None, None]
    two_hosts = Topology.model_validate({"shared_host": "192.168.56.11", "shared_vm": "vm1", "vms": [
        {**vm.model_dump(), "host": host} for vm, host in zip(Topology().vms, ("192.168.56.11", "192.168.56.12"),
                                                              strict=True)]})
    assert [s.unix_socket for s in render.platform_config(plan_for(two_hosts), paths, "vm2").shards] == \
        [None, paths.db_socket("vm2")]


def test_prometheus_targets_cover_every_metrics_port():
    topo = Topology()
    yml = render.prometheus_yml(plan_for(topo))
    for vm in topo.vms:
        for port in (vm.ingest_port, vm.relay_port, vm.ledger_port):
            assert f'"127.0.0.1:{port}"' in yml


def test_my_cnf_binds_loopback_only(tmp_path):
    cnf = render.my_cnf(Topology(), StatePaths(tmp_path), "vm1")
    assert "bind-address=127.0.0.1" in cnf and "port=13306" in cnf and "skip-name-resolve" in cnf


def test_my_cnf_commits_durably(tmp_path):
    """Nothing in the generated config relaxes per-commit fsync or the doublewrite buffer."""
    cnf = render.my_cnf(Topology(), StatePaths(tmp_path), "vm1")
    settings = dict(line.split("=", 1) for line in cnf.splitlines() if "=" in line and not line.startswith("#"))
    assert settings.get("innodb_flush_log_at_trx_commit") == "1"
    assert settings.get("innodb_doublewrite", "1") in {"1", "ON"}
