"""A real stack (MariaDB ×2, broker, HAProxy, every worker) for the whole test session,
on shifted ports and in its own state folder so it never touches a user's stack."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pymysql
import pytest

from payctl.ops.merchants import MerchantKeys
from payctl.stack.binaries import Binaries, tansu_broker_args
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology, dump_toml
from payflow.config import Settings

# Keys issued once in the session fixture (one round trip per shard); other merchants get theirs on
# first use.
KNOWN_MERCHANTS = [f"MERCHANT-{i}" for i in range(200)]
PORT_OFFSET = int(os.environ.get("PAYCTL_TEST_PORT_OFFSET", "2000"))


def make_topology(state_dir: Path) -> Topology:
    settings = Settings(breaker_reset_timeout_s=2.0, breaker_fail_max=3, relay_redrive_after_s=4.0,
                        redrive_interval_s=1.0, publish_timeout_s=1.0, acquirer_latency_median_ms=5,
                        relay_max_retries=4, relay_backoff_base_s=0.2, relay_backoff_max_s=1.0,
                        # CI machines are shared: a slower DB answer than the 0.8 s default is not an outage
                        ingest_db_timeout_s=1.5, consumer_log_lost_grace_s=1.0,
                        # a revocation is waited for in test_merchant_auth
                        api_key_cache_ttl_s=3.0)
    return Topology(state_dir=state_dir, settings=settings).with_port_offset(PORT_OFFSET)


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30, interval: float = 0.2) -> T:
    """The predicate's first truthy answer within `timeout` seconds, else an AssertionError with the last."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class Api:
    """The payment API as a merchant calls it: each request carries the API key of the merchant it
    names (issued through payctl on first use; `auth` serves other clients the same way)."""

    def __init__(self, base: str, auth: MerchantKeys) -> None:
        self.base = base
        self.auth = auth
        self.client = httpx.Client(base_url=base, timeout=10, auth=auth)

    def authorize(self, merchant: str, amount: int = 1000, key: str | None = None, **extra: Any) -> httpx.Response:
        body = {"merchantId": merchant, "amount": amount, "currency": "KRW",
                "idempotencyKey": key or uuid.uuid4().hex, **extra}
        return self.client.post("/payments/authorize", json=body)

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kw)

    def get(self, payment_id: int, merchant: str) -> httpx.Response:
        return self.client.get(f"/payments/{payment_id}", params={"merchantId": merchant})


class Stack:
    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.topo = backend.topo
        self.api = Api(f"{self.topo.gateway_url}/api", MerchantKeys(self.topo, preload=KNOWN_MERCHANTS))

    @property
    def config_file(self) -> Path:
        return self.backend.paths.root.parent / "stack.toml"

    def payctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(self.config_file), *args],
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"payctl {args} exited {result.returncode}: {result.stderr}{result.stdout}")
        return result

    def db(self, shard_index: int) -> pymysql.Connection[Any]:
        vm = self.topo.vms[shard_index]
        return pymysql.connect(host=self.topo.vm_address(vm.name), port=vm.db_port, user=self.topo.db_user,
                               password=self.backend.paths.password_file(vm.name).read_text().strip(),
                               database=self.topo.database, autocommit=True)

    def query(self, shard_index: int, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        conn = self.db(shard_index)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def wait_for(self, predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
        return wait_for(predicate, timeout, interval)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack") / "state"
    topo = make_topology(state)
    (state.parent / "stack.toml").write_text(dump_toml(topo))
    backend = LocalBackend(topo)
    backend.up()
    try:
        stack = Stack(backend)
        stack.api.auth.key_for(stack.api.auth.fallback)  # issues the known merchants' keys now
        yield stack
    finally:
        # PAYCTL_KEEP_LOGS=1 keeps the state folder (logs) of a failed session for reading
        keep = bool(os.environ.get("PAYCTL_KEEP_LOGS"))
        backend.down(purge=not keep)
        if keep:
            print(f"\nstack state kept in {state}")


ENGINE_START_S = 60


def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=60)


def _engine_answers() -> bool:
    try:
        client = _docker_client()
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def _forward_policy() -> str | None:
    if shutil.which("iptables") is None:
        return None
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False).stdout
    return rules.splitlines()[0].split()[-1] if rules else None  # "-P FORWARD ACCEPT"


@dataclass(frozen=True)
class DockerEngine:
    """The session's Docker engine, or why there is none (`client` None, `why` says it)."""

    client: Any
    why: str
    started_here: bool


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """A Docker engine for the whole session: the one running, else dockerd started here and stopped
    at the end by its pid (the FORWARD policy it set put back). The compose tests need it; the netns
    tests run beside it, as on a laptop or CI runner where Docker runs. Never skips by itself: the
    compose tests skip, loudly, on `why`."""
    if _engine_answers():
        yield DockerEngine(_docker_client(), "", started_here=False)
        return
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None:
        yield DockerEngine(None, "dockerd is not installed and none is running (./run install adds docker.io)", False)
        return
    if os.geteuid() != 0:
        yield DockerEngine(None, "none is running and starting dockerd needs root", False)
        return
    policy = _forward_policy()
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("w") as out:
        proc = subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + ENGINE_START_S
    try:
        while not _engine_answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_dockerd(proc)  # not half-started beside the tests that follow
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                yield DockerEngine(None, f"dockerd cannot run on this machine: {tail}", False)
                return
            time.sleep(0.3)
        client = _docker_client()
        yield DockerEngine(client, "", started_here=True)
        client.close()
    finally:
        _stop_dockerd(proc)
        if policy is not None and _forward_policy() != policy:
            subprocess.run(["iptables", "-P", "FORWARD", policy], capture_output=True, check=False)


def _stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Every table the relay's re-drive and the stores' statements read (a copy missing one would fail
# them mid-transaction).
REDRIVE_TABLES = ("outbox_event", "processed_event", "consumer_progress", "parked_message")


@contextmanager
def table_copies(stack: Stack, database: str, tables: tuple[str, ...]) -> Iterator[pymysql.Connection[Any]]:
    """Empty copies of live tables (indexes included) in a database of their own on shard1, out of
    the live services' way; root's autocommit connection to it, dropped afterwards. The DROP waits
    at most 30 s for a transaction a failed test left open, instead of MariaDB's default day."""
    admin = pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 30")
        cur.execute(f"DROP DATABASE IF EXISTS {database}")
        cur.execute(f"CREATE DATABASE {database}")
        for table in tables:
            cur.execute(f"CREATE TABLE {database}.{table} LIKE {stack.topo.database}.{table}")
    try:
        yield admin
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the stack: marked so whatever the file says, so
    `-m "not integration"` never starts one."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def tansu() -> Iterator[str]:
    """A local broker of the test's own (tansu, memory only) on a free port: its bootstrap address."""
    address = f"127.0.0.1:{_free_port()}"
    broker = subprocess.Popen([Binaries.discover().require("tansu"), *tansu_broker_args(address)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(address.split(":")[1])), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield address
    finally:
        broker.terminate()
        broker.wait(timeout=10)
