"""The console of a fresh checkout (defaults, relative state_dir ".payctl") reads the state folder
`payctl up` made: its supervisord program is rendered as the stack renders it and started as
supervisord starts it (same argv, working directory and environment), against a real small
supervisord on the stack's socket; the status API must report that supervisord's program RUNNING."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from payctl.stack import render
from payctl.stack.binaries import Binaries
from payctl.stack.paths import StatePaths
from payctl.stack.plan import services
from payctl.stack.supervisor import Supervisor
from payctl.stack.topology import Topology, load_topology

# The console listens on 8090 + this: 18090, in the range kept for the console's tests.
PORT_OFFSET = 10_000

SUPERVISORD_CONF = """[unix_http_server]
file={sock}

[supervisord]
logfile={logs}/supervisord.log
pidfile={pid}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:gateway]
command=sleep 300
startsecs=0
"""


def supervisord_binary() -> str:
    found = Binaries.discover().found.get("supervisord")
    if not found:
        pytest.skip("supervisord is not installed")
    return found


@pytest.fixture
def fresh_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Topology]:
    """A folder without stack.toml, the working directory of `payctl up`: the built-in defaults."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    monkeypatch.delenv("PAYCTL_CONFIG", raising=False)
    topo = load_topology().with_port_offset(PORT_OFFSET)
    # the defaults' ".payctl", anchored where they apply (the console must not resolve it again)
    assert topo.state_dir == (checkout / ".payctl").resolve()
    yield topo


def start_supervisord(paths: StatePaths) -> subprocess.Popen[bytes]:
    paths.logs.mkdir(parents=True)
    paths.make_socket_dir()
    paths.supervisord_conf.write_text(SUPERVISORD_CONF.format(sock=paths.supervisor_sock, logs=paths.logs,
                                                              pid=paths.supervisord_pid))
    proc = subprocess.Popen([supervisord_binary(), "-n", "-c", str(paths.supervisord_conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sup = Supervisor(paths, "supervisord")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if sup.info().get("gateway", {}).get("statename") == "RUNNING":
            return proc
        time.sleep(0.1)
    proc.terminate()
    raise AssertionError("the test's supervisord never ran its program")


def start_as_supervisord_would(program: render.Program, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **dict_of_key_value_pairs(program.environment)}
    with log.open("wb") as out:
        return subprocess.Popen(shlex.split(program.command), cwd=program.directory, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def test_console_of_a_fresh_checkout_sees_the_running_stack(fresh_checkout: Topology, tmp_path: Path) -> None:
    topo = fresh_checkout
    paths = StatePaths(topo.state_path())
    assert paths.root == (tmp_path / "checkout" / ".payctl").resolve()
    paths.root.mkdir()
    # what `payctl up` writes for the console (LocalBackend.write_files): the topology as loaded
    paths.topology_json.write_text(topo.model_dump_json(indent=2))
    console = next(s for s in services(topo) if s.kind == "console")
    program = render.program_for(console, topo, paths, Binaries.discover())
    env = dict_of_key_value_pairs(program.environment)
    assert all(Path(v).is_absolute() for k, v in env.items() if k.startswith("PAYCTL_CONSOLE_")), env
    assert env["PAYCTL_CONSOLE_STATE_DIR"] == str(paths.root)

    supervisord = start_supervisord(paths)
    proc = start_as_supervisord_would(program, tmp_path / "console.log")
    try:
        url = f"http://127.0.0.1:{topo.console_port}/api/status"
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                resp = httpx.get(url, timeout=10)
                if resp.status_code == 200:
                    body = resp.json()
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert body is not None, (tmp_path / "console.log").read_text()
        states = {s["name"]: s["state"] for s in body["services"]}
        assert states["gateway"] == "RUNNING", states
        assert states["ingest-vm1"] == "ABSENT"
    finally:
        proc.terminate()
        proc.wait(10)
        supervisord.terminate()
        supervisord.wait(10)
        paths.remove_socket_dir()
