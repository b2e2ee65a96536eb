"""A shard that will not start: `up` names it with mariadbd's own reason, exits 2 and leaves nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from payctl.stack.local import LocalBackend
from payctl.stack.plan import services
from payctl.stack.probes import port_free
from payctl.stack.topology import Topology, dump_toml

pytestmark = pytest.mark.integration


def test_shard_that_will_not_start_fails_up_cleanly(tmp_path: Path):
    topo = Topology(state_dir=tmp_path / "state", prometheus_enabled=False).with_port_offset(7000)
    (tmp_path / "stack.toml").write_text(dump_toml(topo))
    backend = LocalBackend(topo)
    backend.up()
    backend.down()
    (backend.paths.datadir("vm2") / "ibdata1").write_text("not an InnoDB system tablespace")
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(tmp_path / "stack.toml"), "up"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "shard2 failed to start" in result.stderr and "InnoDB" in result.stderr
    assert "payctl logs shard2" in result.stderr and "Traceback" not in result.stderr
    assert not backend.sup.is_running()
    for svc in services(topo):
        assert port_free(svc.port), f"{svc.name} left {svc.port} taken"
