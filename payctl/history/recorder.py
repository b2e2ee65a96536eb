"""The recorder (I/O shell): an asyncio client that sends the planner's operations to the gateway
at a fixed arrival rate (open model: launches follow the clock, not the answers; at most
`concurrency` in flight, a launch beyond that is counted as dropped, never queued) and writes each
one to history.ndjson.gz as it completes. `headers` maps a merchant to extra request headers
(e.g. its `Authorization: Bearer <key>`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from payctl.history.historyfile import FILENAME, HistoryWriter
from payctl.history.model import Header, Op, classify
from payctl.history.workload import MAX_ATTEMPTS, Planner, Request

DEFAULT_RATE = 200.0
DEFAULT_MERCHANTS = tuple(f"CLIENT-{n}" for n in range(8))  # even → shard 1, odd → shard 2
# How often a recorder run as its own process checks that the process that started it still lives.
ORPHAN_CHECK_S = 0.5


@dataclass
class RecorderSummary:
    path: str
    ops: int
    dropped: int
    outcomes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "ops": self.ops, "dropped": self.dropped, "outcomes": self.outcomes}


class Recorder:
    def __init__(self, api_url: str, folder: Path, rate: float = DEFAULT_RATE, duration_s: float | None = None,
                 merchants: tuple[str, ...] = DEFAULT_MERCHANTS, concurrency: int = 64, timeout_s: float = 5.0,
                 seed: int | None = None, headers: Mapping[str, Mapping[str, str]] | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.api_url = api_url.rstrip("/")
        self.path = folder / FILENAME
        self.rate = rate
        self.duration_s = duration_s
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.headers = headers or {}
        run = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        self.header = Header(run=run, key_prefix=f"h{run}-", merchants=merchants, gateway=self.api_url,
                             started_w=time.time(), rate=rate)
        self.planner = Planner(list(merchants), self.header.key_prefix, seed)
        self.dropped = 0
        self.outcomes = {"ok": 0, "fail": 0, "unknown": 0}
        self._seq = 0

    # -- one operation ---------------------------------------------------------------------------
    async def _one(self, client: httpx.AsyncClient, req: Request, writer: HistoryWriter) -> None:
        headers = dict(self.headers.get(req.merchant, {}))
        invoke_m, invoke_w = time.monotonic(), time.time()
        status: int | None = None
        code: str | None = None
        answer: dict[str, Any] | None = None
        error: str | None = None
        try:
            if req.kind == "read":
                resp = await client.get(self.api_url + req.path(), params={"merchantId": req.merchant},
                                        headers=headers)
            else:
                resp = await client.post(self.api_url + req.path(), content=orjson.dumps(req.body),
                                         headers={**headers, "Content-Type": "application/json"})
            status = resp.status_code
            try:
                body = orjson.loads(resp.content)
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict):
                if status == 200:
                    answer = body
                elif isinstance(body.get("code"), str):
                    code = body["code"]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        outcome = classify(status, code)
        if outcome == "ok" and answer is None:
            outcome = "unknown"  # a 200 without a payment body is not an answer the client can use
        complete_m, complete_w = time.monotonic(), time.time()
        self._seq += 1
        op = Op(seq=self._seq, kind=req.kind, merchant=req.merchant, payment=req.payment, key=req.key, body=req.body,
                invoke_m=invoke_m, invoke_w=invoke_w, complete_m=complete_m, complete_w=complete_w, outcome=outcome,
                status=status, code=code, answer=answer, error=error, attempt=req.attempt)
        writer.write(op)
        self.outcomes[outcome] += 1
        self.planner.answered(req, outcome, answer, complete_m)

    # -- the schedule ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> RecorderSummary:
        stop = stop or asyncio.Event()
        writer = HistoryWriter(self.path, self.header)
        in_flight: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
                start = time.monotonic()
                i = 0
                last_flush = start
                while not stop.is_set():
                    due = start + i / self.rate
                    if self.duration_s is not None and due - start >= self.duration_s:
                        break
                    delay = due - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            break
                        except TimeoutError:
                            pass
                    i += 1
                    if len(in_flight) >= self.concurrency:
                        self.dropped += 1
                        continue
                    task = asyncio.create_task(self._one(client, self.planner.next(time.monotonic()), writer))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    if time.monotonic() - last_flush > 1.0:
                        writer.flush()
                        last_flush = time.monotonic()
                # retries still due are sent before the end, so an unknown outcome gets its chance
                deadline = time.monotonic() + self.timeout_s * MAX_ATTEMPTS + 5
                while (self.planner.retries or in_flight) and time.monotonic() < deadline:
                    if self.planner.retries and self.planner.retries[0][0] <= time.monotonic():
                        task = asyncio.create_task(self._one(client, self.planner.retries.pop(0)[1], writer))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    else:
                        await asyncio.sleep(0.05)
                if in_flight:
                    await asyncio.gather(*list(in_flight))
        finally:
            writer.close()
        return RecorderSummary(str(self.path), writer.count, self.dropped, dict(self.outcomes))


# -- as its own process (HistoryBeside): no GIL shared with the caller's own load generator -----------
def main(argv: list[str] | None = None) -> None:
    """`python -m payctl.history.recorder URL FOLDER RATE`: record until SIGTERM/SIGINT, then print the
    summary as one JSON line. The merchants' request headers (their keys) come as JSON on stdin,
    never in argv, where any user of the machine could read them."""
    import json
    import os
    import signal
    import sys

    args = sys.argv[1:] if argv is None else argv
    url, folder, rate = args[0], Path(args[1]), float(args[2])
    headers = json.loads(sys.stdin.read() or "{}")
    recorder = Recorder(url, folder, rate=rate, headers=headers)

    starter = os.getppid()

    async def orphaned(stop: asyncio.Event) -> None:
        """Stop when the process that started this one is gone (killed before it could stop us):
        an orphan would go on sending the old stack's keys to whatever listens on that port next."""
        while not stop.is_set():
            if os.getppid() != starter:
                stop.set()
            await asyncio.sleep(ORPHAN_CHECK_S)

    async def go() -> RecorderSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = asyncio.create_task(orphaned(stop))
        try:
            return await recorder.run(stop)
        finally:
            watch.cancel()

    summary = asyncio.run(go())
    print(json.dumps(summary.to_json()), flush=True)


if __name__ == "__main__":
    main()
