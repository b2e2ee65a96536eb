"""The history checker finds each anomaly class in hand-made histories, and stays quiet on a valid one."""

from __future__ import annotations

import gzip
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from payctl.errors import UsageError
from payctl.history.check import check
from payctl.history.facts import FinalState, StoredPayment
from payctl.history.historyfile import HistoryWriter, read_history
from payctl.history.model import Header, Op, classify
from payctl.history.workload import Planner
from tests.cli_inprocess import run_payctl

M = "CLIENT-2"


class H:
    """A history under construction: each op takes one time unit unless told otherwise."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.t = 0.0

    def op(self, kind: str, outcome: str, payment: int | None = None, key: str | None = None,
           amount: int | None = None, answer: dict[str, Any] | None = None, status: int | None = None,
           code: str | None = None, attempt: int = 1, at: float | None = None, took: float = 1.0) -> Op:
        start = self.t if at is None else at
        self.t = start + took + 0.1
        body = None if kind == "read" else {"merchantId": M, **({"amount": amount} if amount is not None else {})}
        op = Op(seq=len(self.ops) + 1, kind=kind, merchant=M, payment=payment, key=key,  # type: ignore[arg-type]
                body=body, invoke_m=start, invoke_w=1e9 + start, complete_m=start + took,
                complete_w=1e9 + start + took, outcome=outcome, status=status or (200 if outcome == "ok" else None),  # type: ignore[arg-type]
                code=code, answer=answer, attempt=attempt)
        self.ops.append(op)
        return op


def pay(pid: int, status: str = "AUTHORIZED", amount: int = 1000, captured: int = 0, refunded: int = 0,
        pending: int = 0) -> dict[str, Any]:
    return {"paymentId": pid, "merchantId": M, "status": status, "amount": amount, "capturedAmount": captured,
            "refundedAmount": refunded, "refundPendingAmount": pending}


def stored(pid: int, key: str, status: str = "AUTHORIZED", amount: int = 1000, captured: int = 0,
           refunded: int = 0, pending: int = 0) -> StoredPayment:
    return StoredPayment(pid, M, key, status, amount, captured, refunded, pending)


def final_of(*payments: StoredPayment, records: dict[str, int] | None = None,
             refunds: dict[int, list[int]] | None = None, api: dict[int, Any] | None = None) -> FinalState:
    views = {p.payment_id: pay(p.payment_id, p.status, p.amount, p.captured, p.refunded, p.refund_pending)
             for p in payments}
    return FinalState(payments={p.payment_id: p for p in payments},
                      records={(M, k): s for k, s in (records or {}).items()},
                      refunds={pid: [(a, "SUCCEEDED") for a in amounts] for pid, amounts in (refunds or {}).items()},
                      api={**views, **(api or {})})


def kinds(verdict: Any) -> dict[str, int]:
    return {k: v for k, v in verdict.counts().items() if v}


def valid_history() -> tuple[H, FinalState]:
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "ok", payment=1, key="c1", amount=1000, answer=pay(1, "CAPTURED", captured=1000))
    h.op("refund", "ok", payment=1, key="r1", amount=300, answer=pay(1, "REFUND_REQUESTED", captured=1000, pending=300))
    h.op("read", "ok", payment=1, answer=pay(1, "PARTIAL_REFUNDED", captured=1000, refunded=300))
    h.op("authorize", "ok", key="a2", amount=1000, answer=pay(3))
    h.op("cancel", "ok", payment=3, key="x3", answer=pay(3, "CANCELLED"))
    h.op("capture", "fail", payment=3, key="c3", amount=1000, status=409, code="CAPTURE_CONFLICT")
    final = final_of(stored(1, "a1", "PARTIAL_REFUNDED", captured=1000, refunded=300),
                     stored(3, "a2", "CANCELLED"),
                     records={"a1": 200, "c1": 200, "r1": 200, "a2": 200, "x3": 200, "c3": 409},
                     refunds={1: [300]})
    return h, final


def test_a_valid_history_has_no_anomaly():
    h, final = valid_history()
    verdict = check(h.ops, final)
    assert verdict.valid, [a.message for a in verdict.anomalies]
    assert verdict.requests == 6 and verdict.outcomes == {"ok": 6, "fail": 1, "unknown": 0}


def test_a_lost_acknowledged_authorize_is_reported_with_its_operation():
    h, final = valid_history()
    del final.payments[3]
    final.api[3] = None
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"lost_ack": 1}
    anomaly = verdict.anomalies[0]
    assert anomaly.payment == 3 and [o.kind for o in anomaly.ops] == ["authorize"]
    assert "GET answers 404" in anomaly.message or "no payment" in anomaly.message


def test_a_lost_acknowledged_capture_is_reported():
    h, final = valid_history()
    final.payments[1] = stored(1, "a1", "AUTHORIZED")
    final.refunds = {}
    verdict = check(h.ops, final)
    assert kinds(verdict).get("lost_ack", 0) >= 1
    assert any(o.kind == "capture" for a in verdict.anomalies if a.kind == "lost_ack" for o in a.ops)


def test_a_503_that_wrote_is_reported():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "fail", payment=1, key="c1", amount=1000, status=503, code="SHARD_UNAVAILABLE")
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), records={"a1": 200, "c1": 200})
    verdict = check(h.ops, final)
    assert "failed_wrote" in kinds(verdict)
    assert any(o.status == 503 for a in verdict.anomalies for o in a.ops)


def test_a_503_that_left_only_a_stored_answer_is_reported():
    h = H()
    h.op("authorize", "fail", key="a1", amount=1000, status=503, code="SHARD_UNAVAILABLE")
    verdict = check(h.ops, final_of(records={"a1": 409}))
    assert kinds(verdict) == {"failed_wrote": 1}


def test_a_retried_key_that_made_a_second_payment_is_a_duplicate():
    h = H()
    h.op("authorize", "unknown", key="a1", amount=1000, status=504, code="OUTCOME_UNKNOWN")
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(5), attempt=2)
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(7), attempt=3)
    verdict = check(h.ops, final_of(stored(5, "a1"), stored(7, "other"), records={"a1": 200}))
    assert kinds(verdict) == {"duplicate": 1}
    assert {o.answered_payment() for o in verdict.anomalies[0].ops} == {5, 7}


def test_a_retry_refused_as_a_different_request_is_a_duplicate():
    h = H()
    h.op("authorize", "unknown", key="a1", amount=1000)
    h.op("authorize", "fail", key="a1", amount=1000, status=422, code="IDEMPOTENCY_KEY_REUSED", attempt=2)
    verdict = check(h.ops, final_of(stored(1, "a1"), records={"a1": 200}))
    assert "duplicate" in kinds(verdict)


def test_refunds_over_the_captured_amount_are_an_invalid_state():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "ok", payment=1, key="c1", amount=500, answer=pay(1, "CAPTURED", captured=500))
    h.op("refund", "ok", payment=1, key="r1", amount=300, answer=pay(1, "REFUND_REQUESTED", captured=500, pending=300))
    h.op("refund", "ok", payment=1, key="r2", amount=300, answer=pay(1, "REFUND_REQUESTED", captured=500, pending=600))
    final = final_of(stored(1, "a1", "REFUNDED", captured=500, refunded=600),
                     records={"a1": 200, "c1": 200, "r1": 200, "r2": 200}, refunds={1: [300, 300]})
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"invalid_state": 2}
    assert any("more than the 500 captured" in a.message for a in verdict.anomalies)


def test_a_read_that_goes_back_in_time_is_stale():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "ok", payment=1, key="c1", amount=1000, answer=pay(1, "CAPTURED", captured=1000))
    stale = h.op("read", "ok", payment=1, answer=pay(1, "AUTHORIZED"))
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), records={"a1": 200, "c1": 200})
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"stale_read": 1}
    assert verdict.anomalies[0].ops[-1] is stale and verdict.anomalies[0].ops[0].kind == "capture"


def test_concurrent_reads_may_see_either_state():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "ok", payment=1, key="c1", amount=1000, answer=pay(1, "CAPTURED", captured=1000), at=5, took=2)
    h.op("read", "ok", payment=1, answer=pay(1, "AUTHORIZED"), at=6, took=0.5)  # invoked before the capture ended
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), records={"a1": 200, "c1": 200})
    assert check(h.ops, final).valid


def test_unknown_outcomes_resolve_to_applied_or_not_applied():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "unknown", payment=1, key="c1", amount=1000, status=504, code="OUTCOME_UNKNOWN")
    h.op("authorize", "unknown", key="a2", amount=1000)
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), records={"a1": 200, "c1": 200})
    verdict = check(h.ops, final)
    assert verdict.valid, [a.message for a in verdict.anomalies]
    assert (verdict.unknown_applied, verdict.unknown_not_applied) == (1, 1)


def test_an_effect_without_its_witness_is_an_unresolved_unknown():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "unknown", payment=1, key="c1", amount=1000)
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), records={"a1": 200})
    verdict = check(h.ops, final)
    assert "unresolved_unknown" in kinds(verdict) and "money" in kinds(verdict)


@pytest.mark.parametrize(("status", "code", "outcome"), [
    (200, None, "ok"), (None, None, "unknown"), (504, "OUTCOME_UNKNOWN", "unknown"), (502, None, "unknown"),
    (503, "SHARD_UNAVAILABLE", "fail"), (503, None, "unknown"), (429, "LOCK_TIMEOUT", "fail"),
    (409, "CAPTURE_CONFLICT", "fail"), (500, None, "unknown")])
def test_answers_are_classified_by_the_contract(status, code, outcome):
    assert classify(status, code) == outcome


def write(path: Path, h: H) -> None:
    writer = HistoryWriter(path, Header("r", "hr-", (M,), "http://127.0.0.1:1/api", 1.0, 10.0))
    for op in h.ops:
        writer.write(op)
    writer.close()


def test_a_history_round_trips_through_its_file(tmp_path):
    h, final = valid_history()
    write(tmp_path / "history.ndjson.gz", h)
    header, ops = read_history(tmp_path / "history.ndjson.gz")
    assert header.key_prefix == "hr-" and [o.to_json() for o in ops] == [o.to_json() for o in h.ops]
    assert check(ops, final).valid


def test_a_malformed_history_names_file_line_and_expectation(tmp_path):
    h, _ = valid_history()
    path = tmp_path / "history.ndjson.gz"
    write(path, h)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    lines[3] = lines[3].replace(b'"outcome":"ok"', b'"outcome":"maybe"')
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(UsageError, match=r"history\.ndjson\.gz:4: outcome: expected one of ok, fail, unknown"):
        read_history(path)
    result = run_payctl("history", "check", str(tmp_path))
    assert result.code == 2 and len(result.lines) == 1 and ":4: outcome: expected" in result.stderr
    path.write_bytes(b"not gzip")
    with pytest.raises(UsageError, match="expected gzip-compressed NDJSON"):
        read_history(path)


def test_the_planner_retries_an_unknown_outcome_with_the_same_key_and_body():
    planner = Planner(["CLIENT-1", "CLIENT-2"], "hx-", seed=1)
    first = planner.next(0.0)
    assert first.kind == "authorize" and first.key == "hx-1"
    planner.answered(first, "unknown", None, 0.0)
    retry = planner.next(10.0)
    assert (retry.key, retry.body, retry.attempt) == (first.key, first.body, 2)
    planner.answered(retry, "ok", pay(1, amount=first.body["amount"]), 10.0)  # type: ignore[index]
    later = [planner.next(20.0) for _ in range(200)]
    assert any(r.kind == "capture" and r.payment == 1 for r in later) or any(r.payment == 1 for r in later)


def test_refunds_after_a_capture_resolved_applied_are_not_over_capture():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "unknown", payment=1, key="c1", amount=1000, status=504, code="OUTCOME_UNKNOWN")
    h.op("refund", "ok", payment=1, key="r1", amount=400, answer=pay(1, "REFUND_REQUESTED", captured=1000, pending=400))
    final = final_of(stored(1, "a1", "PARTIAL_REFUNDED", captured=1000, refunded=400),
                     records={"a1": 200, "c1": 200, "r1": 200}, refunds={1: [400]})
    verdict = check(h.ops, final)
    assert verdict.valid, [a.message for a in verdict.anomalies]


def test_a_recorder_beside_a_workload_runs_in_its_own_process_and_stops_twice(tmp_path):
    """HistoryBeside starts the recorder as a process (its own GIL), stops it with SIGTERM and reads
    its summary; a second stop returns the same summary."""
    from payctl.history.beside import HistoryBeside
    from payctl.stack.topology import Topology

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    topo = Topology.model_validate({"state_dir": str(tmp_path / "state"), "gateway_port": port,
                                    "settings": {"api_auth": "off"}})
    beside = HistoryBeside(topo, tmp_path / "run", rate=20)
    beside.start()
    time.sleep(1.5)
    first = beside.stop()
    assert first is not None and beside.stop() is first
    assert first.ops >= 5 and first.outcomes["unknown"] == first.ops, first
    _, ops = read_history(tmp_path / "run" / "history.ndjson.gz")
    assert len(ops) == first.ops and all(op.outcome == "unknown" and op.error for op in ops)
