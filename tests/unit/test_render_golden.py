"""Every generated file, byte for byte, for a set of topologies covering both backends and the
isolation modes: a change to what payctl renders shows up here as a diff to review.

The expected texts live in tests/unit/golden/<case>/. After a deliberate change, regenerate them
with `PAYCTL_UPDATE_GOLDEN=1 pytest tests/unit/test_render_golden.py` and review the diff."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from payctl.stack import compose_render, render
from payctl.stack.binaries import Binaries
from payctl.stack.paths import StatePaths
from payctl.stack.plan import plan_for, services
from payctl.stack.topology import Topology

GOLDEN = Path(__file__).parent / "golden"
BINS = Binaries({n: f"/bin/{n}" for n in ("mariadbd", "haproxy", "tansu", "prometheus", "supervisord",
                                           "mariadb-install-db", "k6", "ip")})
STATE = StatePaths(Path("/state"))


def _two_hosts() -> Topology:
    hosts = ("192.168.56.11", "192.168.56.12")
    return Topology.model_validate({"shared_host": hosts[0], "shared_vm": "vm1", "vms": [
        {**vm.model_dump(), "host": host} for vm, host in zip(Topology().vms, hosts, strict=True)]})


def _three_vms_external_kafka() -> Topology:
    base = Topology().model_dump()
    third = {**base["vms"][1], "name": "vm3", **{k: v + 1 for k, v in base["vms"][1].items() if k.endswith("_port")},
             "ingest_workers": 3, "ingest_threads": 2}
    return Topology.model_validate({**base, "vms": [*base["vms"], third], "bootstrap_servers": "kafka.example:9092",
                                    "prometheus_enabled": False, "console_enabled": False})


LOCAL_CASES: dict[str, Callable[[], Topology]] = {
    "local-default": Topology,
    "local-netns": lambda: Topology(isolation="netns", netns_subnet="10.9.8.0/24"),  # type: ignore[arg-type]
    "local-two-hosts": _two_hosts,
    "local-external-kafka": _three_vms_external_kafka,
}
COMPOSE_CASES: dict[str, Callable[[], Topology]] = {
    "compose-default": Topology,
    "compose-external-kafka": _three_vms_external_kafka,
    "compose-upstream": lambda: Topology(compose_images="upstream"),
}


def _service_list(topo: Topology, vm: str | None) -> str:
    """What `payctl up [--vm VM]` starts, in order."""
    return "".join(f"{s.name} {s.kind} {s.vm} {s.port} {s.health}\n" for s in services(topo, vm))


def local_files(topo: Topology) -> dict[str, str]:
    plan = plan_for(topo)
    out = {
        "supervisord.conf": render.supervisord_conf(plan, STATE, BINS),
        "haproxy.cfg": render.haproxy_cfg(plan, Path("/state/haproxy/503.http")),
        "prometheus.yml": render.prometheus_yml(plan),
        "services.txt": _service_list(topo, None),
    }
    for vm in topo.vms:
        out[f"my-{vm.name}.cnf"] = render.my_cnf(topo, STATE, vm.name)
        out[f"payflow-{vm.name}.json"] = render.platform_config(plan, STATE, vm.name).model_dump_json(indent=2)
        out[f"services-{vm.name}.txt"] = _service_list(topo, vm.name)  # `payctl up --vm VM`
    return out


def compose_output(topo: Topology) -> dict[str, str]:
    return {str(f.path).replace("/", "__"): f.text for f in compose_render.render(topo).files()}


@pytest.fixture(autouse=True)
def _same_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's path and the user id reach the local files: pin them."""
    monkeypatch.setattr(sys, "executable", "/py/bin/python")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def _check(case: str, rendered: dict[str, str]) -> None:
    folder = GOLDEN / case
    if os.environ.get("PAYCTL_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in rendered.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in folder.iterdir()}
    assert sorted(rendered) == sorted(expected)
    for name, text in rendered.items():
        assert text == expected[name], f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case", sorted(LOCAL_CASES))
def test_local_files_are_unchanged(case: str) -> None:
    _check(case, local_files(LOCAL_CASES[case]()))


@pytest.mark.parametrize("case", sorted(COMPOSE_CASES))
def test_compose_files_are_unchanged(case: str) -> None:
    _check(case, compose_output(COMPOSE_CASES[case]()))


@pytest.mark.parametrize("golden", sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.glob("*/*haproxy.cfg")))
def test_every_gateway_config_is_one_haproxy_takes_without_a_warning(golden: str, tmp_path: Path) -> None:
    """HAProxy's own check of each golden config: a rule it would run in another order than written
    (an http-request after a use_backend) or a name it cannot resolve is a warning or an alert.
    Namespaces are left out: this machine has none of payctl's."""
    haproxy = Binaries.discover().require("haproxy")
    error_503 = Path(__file__).parents[2] / "payctl" / "templates" / "503.http"
    text = (GOLDEN / golden).read_text()
    text = re.sub(r"errorfile 503 \S+", f"errorfile 503 {error_503}", text).replace(" namespace payctl-shared", "")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert not re.search(r"WARNING|ALERT", check.stdout + check.stderr), check.stdout + check.stderr
