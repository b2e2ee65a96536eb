"""The gateway sends a shard's calls to the instance that reaches that shard.

With ingest-vm1 cut from shard2 (chaos partition-shard2), VM1 answers odd merchants a fast 503
SHARD_UNAVAILABLE. HAProxy retried such a 503 on VM2 only while VM2 had a free connection slot;
with VM2 at its cap the retry went back to VM1 and the client got the 503 (machines N and O:
odd merchants 0.97-0.98 in the partition). Now each instance reports per shard whether it reaches
it (`GET /health/shards/<shard>`), and while only one instance does, that shard's calls wait in the
gateway's queue for it instead of bouncing off the other.

Real HAProxy with the config `payctl up` renders; the ingest instances are stand-ins that answer as
the ingest does (a 503 at once for a shard they cannot reach, else 200 after a while), so VM2's
slots are full and the test does not depend on timing of a real partition."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import httpx
import pytest

from payctl.stack import render
from payctl.stack.binaries import Binaries
from payctl.stack.plan import plan_for
from payctl.stack.topology import Topology
from payflow.domain.sharding import shard_for_id, shard_for_merchant
from tests.integration.conftest import wait_for

PORT_OFFSET = 7400  # beside the session stack's ports
WORK_S = 0.08  # how long a stand-in instance takes to answer a call for a shard it reaches


@dataclass
class StandIn:
    """An ingest instance as the gateway sees it."""

    name: str
    unreachable: set[str]
    shard_names: list[str]
    served: list[tuple[str, int]] = field(default_factory=list)  # (path, shard index) of each 200
    refused: int = 0  # calls for a shard it cannot reach (answered 503)
    work_s: float = WORK_S
    lock: threading.Lock = field(default_factory=threading.Lock)
    # One WSGI thread, as the topology below says: a health check waits behind the calls in
    # progress, as it does in the real instance (the gateway lets 8 reach it at once).
    thread: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, object]]:
        with self.thread:
            return self._answer(method, path, body)

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, object]]:
        if method == "GET" and path == "/health":
            return 200, {"status": "UP"}
        ready = re.fullmatch(r"/health/shards/([a-z0-9]+)", path)
        if method == "GET" and ready:
            return (503 if ready.group(1) in self.unreachable else 200), {}
        by_id = re.fullmatch(r"/payments/(?:capture|refund|cancel)/(\d+)", path)
        if by_id:
            shard = shard_for_id(int(by_id.group(1)), len(self.shard_names))
        elif path == "/payments/authorize":
            shard = shard_for_merchant(json.loads(body)["merchantId"], len(self.shard_names))
        else:
            return 404, {"code": "NOT_FOUND"}
        if self.shard_names[shard] in self.unreachable:
            with self.lock:
                self.refused += 1
            return 503, {"code": "SHARD_UNAVAILABLE"}
        time.sleep(self.work_s)
        with self.lock:
            self.served.append((path, shard))
        return 200, {"instance": self.name}


def _serve(stand_in: StandIn, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, doc = stand_in.answer(self.command, self.path, body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except ConnectionError:  # a health check that gave up
                pass

        do_GET = do_POST = _reply

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops connections in a burst: a refused one marks it down

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Gateway:
    url: str
    instances: dict[str, StandIn]
    ports: dict[str, int]
    servers: dict[str, ThreadingHTTPServer]

    def rows(self) -> list[dict[str, str]]:
        """HAProxy's stats rows; none while it is still starting."""
        try:
            text = httpx.get(f"{self.url}/gateway/stats;csv", timeout=2).text.lstrip("# ")
        except httpx.HTTPError:
            return []
        return list(csv.DictReader(io.StringIO(text)))

    def status(self, backend: str, server: str) -> str:
        return next((r["status"] for r in self.rows() if r["pxname"] == backend and r["svname"] == server), "")

    def crash(self, name: str) -> None:
        server = self.servers.pop(name)
        server.shutdown()
        server.server_close()

    def restart(self, name: str) -> None:
        self.servers[name] = _serve(self.instances[name], self.ports[name])


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    topo = Topology(state_dir=tmp_path / "state").with_port_offset(PORT_OFFSET)
    # one WSGI thread each: the gateway lets 8 calls at a time reach an instance
    topo = topo.model_copy(update={"vms": [vm.model_copy(update={"ingest_workers": 1, "ingest_threads": 1})
                                           for vm in topo.vms]})
    plan = plan_for(topo)
    shard_names = [topo.shard_name(i) for i in range(topo.shard_count)]
    error_503 = tmp_path / "503.http"
    error_503.write_text(resources.files("payctl").joinpath("templates/503.http").read_text())
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render.haproxy_cfg(plan, error_503))
    instances = {f"ingest-{vm.name}": StandIn(f"ingest-{vm.name}", set(), shard_names) for vm in topo.vms}
    instances["ingest-vm1"].unreachable.add("shard2")
    ports = {f"ingest-{vm.name}": vm.ingest_port for vm in topo.vms}
    gateway = Gateway(f"http://127.0.0.1:{topo.gateway_port}", instances, ports,
                      {name: _serve(instances[name], port) for name, port in ports.items()})
    proc = subprocess.Popen([Binaries.discover().require("haproxy"), "-db", "-f", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield gateway
    finally:
        proc.terminate()
        proc.wait(10)
        for name in list(gateway.servers):
            gateway.crash(name)


def _post(url: str, path: str, merchant: str) -> int:
    return httpx.post(f"{url}{path}", json={"merchantId": merchant, "amount": 100, "currency": "EUR",
                                            "idempotencyKey": f"k-{merchant}-{time.monotonic_ns()}"},
                      timeout=30).status_code


def test_a_shard_one_instance_cannot_reach_is_served_by_the_other_even_at_its_cap(gateway: Gateway) -> None:
    wait_for(lambda: gateway.status("reach-shard2", "ingest-vm1").startswith("DOWN"), timeout=15, interval=0.1)
    # 48 odd merchants at once: 6 x VM2's cap of 8, so most wait in the gateway's queue, and VM2's
    # checks wait behind 8 calls in progress (its reach must not read as lost when it is only busy)
    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        odd = list(pool.map(lambda i: _post(gateway.url, "/api/payments/authorize", f"MERCHANT-{2 * i + 1}"),
                            range(48)))
    assert odd == [200] * 48
    assert gateway.instances["ingest-vm1"].refused == 0  # none was sent to the instance that cannot serve it
    # payment ids name their shard: (id - 1) mod 2 == 1 is shard2
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        by_id = list(pool.map(lambda i: _post(gateway.url, f"/api/payments/capture/{2 * i + 2}", "MERCHANT-1"),
                              range(24)))
    assert by_id == [200] * 24
    vm2 = gateway.instances["ingest-vm2"].served
    assert sum(1 for _, shard in vm2 if shard == 1) == 72
    # the shard both reach is still balanced over both
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        even = list(pool.map(lambda i: _post(gateway.url, "/api/payments/authorize", f"MERCHANT-{2 * i}"), range(16)))
    assert even == [200] * 16
    assert sum(1 for _, shard in gateway.instances["ingest-vm1"].served if shard == 0) >= 4


def test_a_merchant_id_names_its_shard_at_the_gateway_as_in_the_ingest(gateway: Gateway) -> None:
    """Digits mod N (at most 18: the gateway's integers are 64-bit), else crc32 mod N: the gateway's
    choice for merchant ids of every shape matches the ingest's rule (DESIGN.md §2)."""
    wait_for(lambda: gateway.status("reach-shard2", "ingest-vm1").startswith("DOWN"), timeout=15, interval=0.1)
    merchants = ["MERCHANT-7", "m9x2", "abc", "xyz", "ACME_shop-B", "Z", "q-", "shop_0", "X1Y2Z3",
                 "9" * 18, "no_digits_at_all"]
    to_shard2 = [m for m in merchants if shard_for_merchant(m, 2) == 1]
    assert to_shard2, "the sample must hold shard2 merchants"
    for merchant in to_shard2:
        for _ in range(4):
            assert _post(gateway.url, "/api/payments/authorize", merchant) == 200, merchant
    assert gateway.instances["ingest-vm1"].refused == 0
    # 32 digits are beyond the gateway's integers: balanced as before, and VM1's 503 is retried on VM2
    for _ in range(4):
        assert _post(gateway.url, "/api/payments/authorize", "0" * 31 + "1") == 200
    assert gateway.instances["ingest-vm1"].refused >= 1


def test_an_instance_that_is_down_pins_nothing_so_it_takes_its_share_again_when_it_returns(
        gateway: Gateway) -> None:
    """A crashed instance fails its reach checks too, so the survivor "alone reaches" every shard.
    Pinning then would park every call in the survivor's own queue, which an instance coming back
    never takes from (it takes only from the backend's): the backlog would wait on one instance
    after both are up. Calls are pinned only while the instance that cannot reach the shard is up."""
    gateway.instances["ingest-vm1"].unreachable.clear()
    for stand_in in gateway.instances.values():
        # a call's 50 ms keeps a check behind 8 of them (0.4 s) well inside the ingest check's 1 s
        stand_in.work_s = 0.05
    gateway.crash("ingest-vm1")
    wait_for(lambda: all(gateway.status(b, "ingest-vm1").startswith("DOWN")
                         for b in ("ingest", "reach-shard1", "reach-shard2")), timeout=15, interval=0.1)
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        # 64 calls of both shards at once: VM2 alone needs 64 x 0.05 s for them
        answers = [pool.submit(_post, gateway.url, "/api/payments/authorize", f"MERCHANT-{i}") for i in range(64)]
        time.sleep(0.3)
        gateway.restart("ingest-vm1")
        statuses = [a.result() for a in answers]
    # the calls still waiting when VM1 came back were shared with it (with pins, none reached it:
    # all waited in VM2's queue)
    assert statuses == [200] * 64
    assert len(gateway.instances["ingest-vm1"].served) >= 4
