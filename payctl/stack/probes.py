"""Health probes for every service kind (TCP, MySQL, HTTP)."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from payctl.errors import EnvironmentProblem, PayctlError
from payctl.stack import shards
from payctl.stack.paths import StatePaths
from payctl.stack.plan import PlannedService
from payctl.stack.topology import Topology


def port_open(port: int, timeout: float = 0.3, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_json(port: int, path: str, timeout: float = 1.0, host: str = "127.0.0.1") -> tuple[int, Any]:
    resp = httpx.get(f"http://{host}:{port}{path}", timeout=timeout)
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body


def relay_breaker(relay_port: int, timeout: float = 1.0, host: str = "127.0.0.1") -> dict[str, Any]:
    """A relay's `kafka-publisher` breaker snapshot; {"state": "UNREACHABLE"} when it does not answer."""
    try:
        body = http_json(relay_port, "/circuit-breaker/kafka-publisher", timeout=timeout, host=host)[1]
    except Exception as exc:
        return {"state": "UNREACHABLE", "error": type(exc).__name__}
    return body if isinstance(body, dict) else {"state": "UNREACHABLE"}


def probe(svc: PlannedService, topo: Topology, paths: StatePaths) -> tuple[bool, str]:
    """(healthy, detail) for one service."""
    try:
        host = topo.gateway_host if svc.kind == "gateway" else topo.address_of(svc)
        if svc.health == "tcp":
            return (True, "accepting") if port_open(svc.port, host=host) else (False, "port closed")
        if svc.health == "mysql":
            assert svc.vm is not None
            shards.ping(topo, svc.vm)
            return True, "ping ok"
        status, body = http_json(svc.port, svc.health, host=host)
        if status == 200:
            detail = body.get("status", "UP") if isinstance(body, dict) else "ok"
            return True, str(detail)
        return False, f"HTTP {status}"
    except Exception as exc:
        return False, describe(exc)


def describe(exc: BaseException) -> str:
    """Why a probe failed, in words an operator reads (not an exception class name)."""
    if isinstance(exc, TimeoutError | socket.timeout | httpx.TimeoutException):
        return "not answering (timed out)"
    if isinstance(exc, ConnectionRefusedError | httpx.ConnectError):
        return "refusing connections"
    if isinstance(exc, PayctlError) and exc.__cause__ is not None:
        return describe(exc.__cause__)
    if isinstance(exc, OSError) and exc.strerror:
        return f"unreachable ({exc.strerror.lower()})"
    return "not answering"


def gateway_servers(port: int, timeout: float = 1.0, host: str = "127.0.0.1") -> dict[str, str]:
    """Server → status ("UP", "DOWN", …) of the gateway's ingest backend, from HAProxy's CSV stats."""
    text = httpx.get(f"http://{host}:{port}/gateway/stats;csv", timeout=timeout).text
    lines = text.lstrip("# ").splitlines()
    if not lines:
        return {}
    header = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "ingest" and row.get("svname") not in ("FRONTEND", "BACKEND"):
            out[row["svname"]] = row.get("status", "")
    return out


def wait_gateway_routes(topo: Topology, ingests: list[str], timeout_s: float, interval_s: float = 0.2) -> None:
    """Until the gateway marks every one of `ingests` UP (its health checks passed), whichever backend
    runs it; else an EnvironmentProblem naming the states it last saw."""
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = gateway_servers(topo.gateway_port, host=topo.gateway_host)
        except Exception:  # not answering yet: the same as not UP
            states = {}
        if ingests and all(states.get(name, "").startswith("UP") for name in ingests):
            return
        time.sleep(interval_s)
    raise EnvironmentProblem(f"the gateway never marked {ingests} UP (last: {states})",
                             "see `payctl logs gateway` and the ingest logs")
