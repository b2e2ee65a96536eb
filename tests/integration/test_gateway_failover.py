"""The gateway stops choosing an ingest instance at the first connection it refuses, not after its
health checks fail twice (1-2 s): in that window a request refused by the dead instance was retried
once, and when the live one sat at its connection cap (one instance taking all the load), HAProxy
retried on the dead one again and answered 503 "no ingest instance is available". Marked down, the
dead instance gets no retry; the request waits in the gateway's queue for the live one."""

from __future__ import annotations

import concurrent.futures
import csv
import io

import httpx

from payctl.stack.probes import gateway_servers
from tests.integration.conftest import Stack


def _ingest_rows(host: str, port: int) -> dict[str, dict[str, str]]:
    text = httpx.get(f"http://{host}:{port}/gateway/stats;csv", timeout=2).text.lstrip("# ")
    return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "ingest"}


def test_an_instance_that_refuses_a_connection_is_marked_down_at_once(stack: Stack) -> None:
    port, host = stack.topo.gateway_port, stack.topo.gateway_host
    assert gateway_servers(port, host=host)["ingest-vm1"] == "UP"
    stack.backend.stop("ingest-vm1")
    try:
        # enough requests that some are sent to ingest-vm1 while the gateway still has it UP
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: stack.api.authorize(f"MERCHANT-{i * 2}").status_code, range(16)))
        rows = _ingest_rows(host, port)
        assert answers == [200] * 16  # refused connections are retried on the other instance
        vm1 = rows["ingest-vm1"]
        # DOWN, and by the analysis of live traffic ("hanafail": failed health analyses), not by its checks
        assert vm1["status"].startswith("DOWN") and int(vm1["hanafail"] or 0) >= 1, vm1
        assert rows["ingest-vm2"]["status"] == "UP"
    finally:
        stack.backend.start("ingest-vm1")
    stack.wait_for(lambda: gateway_servers(port, host=host).get("ingest-vm1") == "UP", timeout=30)
