"""Background payment load for experiments: a fixed arrival rate, results kept per shard parity.
Each arrival is an authorization, or with `flow="full"` an authorization, its capture and its
refund one after another (a step refused ends that payment's flow); every request is a sample."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from payctl.loadtest.stats import percentile

Flow = Literal["authorize", "full"]


@dataclass(frozen=True)
class Sample:
    at: float
    parity: str
    status: int  # 0 = transport error
    latency_ms: float


def merchant_for(i: int, merchants: str) -> tuple[str, str]:
    if merchants == "even" or (merchants == "both" and i % 2 == 0):
        return f"MERCHANT-{(i * 2) % 200}", "even"
    return f"MERCHANT-{(i * 2 + 1) % 200}", "odd"


class LoadGenerator:
    def __init__(self, base_url: str, rate: float, duration_s: float | None = None, merchants: str = "both",
                 workers: int | None = None, auth: httpx.Auth | None = None, flow: Flow = "authorize",
                 transport: httpx.BaseTransport | None = None) -> None:
        # enough workers that a slow answer (a hung shard's timeout) does not delay the schedule
        workers = workers or max(16, min(64, int(rate / 2)))
        self.base_url = base_url
        self.rate = rate
        self.duration_s = duration_s
        self.merchants = merchants
        self.flow = flow
        self.samples: list[Sample] = []
        self.refunds_requested = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self._client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=workers), auth=auth,
                                    transport=transport)
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
        self._thread.start()

    def _schedule(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            due = start + i / self.rate
            if self.duration_s is not None and due - start > self.duration_s:
                break
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self._pool.submit(self._one, i)
            i += 1

    def _one(self, i: int) -> None:
        merchant, parity = merchant_for(i, self.merchants)
        answer = self._send(parity, "/payments/authorize", {
            "merchantId": merchant, "amount": 1000, "currency": "KRW", "idempotencyKey": uuid.uuid4().hex})
        if answer is None:  # refused, or only authorizing
            return
        payment_id = answer.get("paymentId")
        if payment_id is None:
            return
        if self._send(parity, f"/payments/capture/{payment_id}", {"merchantId": merchant}) is None:
            return
        if self._send(parity, f"/payments/refund/{payment_id}", {"merchantId": merchant}) is not None:
            with self._lock:
                self.refunds_requested += 1

    def _send(self, parity: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """One request, kept as a sample; in the full flow its JSON body when answered 200 (None
        otherwise, and always when only authorizing: the body is not needed)."""
        started = time.perf_counter()
        answer: Any = None
        try:
            resp = self._client.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError:
            status = 0
        else:
            status = resp.status_code
            if status == 200 and self.flow == "full":
                try:
                    answer = resp.json()
                except ValueError:
                    answer = None
        sample = Sample(time.time(), parity, status, (time.perf_counter() - started) * 1000)
        with self._lock:
            self.samples.append(sample)
        return answer if isinstance(answer, dict) else None

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.stats()

    def wait(self) -> None:
        self._thread.join()

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Results of the requests that completed in [since, until] (default: all of them)."""
        with self._lock:
            samples = [s for s in self.samples
                       if (since is None or s.at >= since) and (until is None or s.at <= until)]
            refunds = self.refunds_requested
        return {**summarize(samples), "flow": self.flow, "refunds_requested": refunds}


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Pure: totals, then per merchant parity (even → shard1, odd → shard2)."""
    out: dict[str, Any] = {"sent": len(samples), "failures": sum(1 for s in samples if s.status != 200),
                           "transport_errors": sum(1 for s in samples if s.status == 0)}
    for parity in ("even", "odd"):
        group = [s for s in samples if s.parity == parity]
        ok = sum(1 for s in group if s.status == 200)
        statuses: dict[str, int] = {}
        for s in group:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        lat = sorted(s.latency_ms for s in group)
        out[parity] = {"sent": len(group), "ok": ok, "success_rate": ok / len(group) if group else None,
                       "statuses": statuses, "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else None}
        failed_lat = sorted(s.latency_ms for s in group if s.status != 200)
        out[parity]["failed_p99_ms"] = percentile(failed_lat, 99) if failed_lat else 0.0
        # a failure that is not the fast, explicit 503 SHARD_UNAVAILABLE (timeouts, 5xx, resets)
        out[parity]["non_503_failures"] = sum(1 for s in group if s.status not in (200, 503))
        # 504 OUTCOME_UNKNOWN: the shard went away while the request's COMMIT was in flight
        out[parity]["outcome_unknown"] = sum(1 for s in group if s.status == 504)
        out[parity]["other_failures"] = sum(1 for s in group if s.status not in (200, 503, 504))
    return out
