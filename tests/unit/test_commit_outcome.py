"""A 503 SHARD_UNAVAILABLE promises that nothing was written (the gateway retries it on the other
instance); a shard lost while its COMMIT was in flight must not be reported that way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import MySQLdb
import pymysql
import pytest

from payflow.config import Settings, ShardConfig
from payflow.db import pool as pool_mod
from payflow.db.pool import ShardPools, ShardUnavailable

LOST = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
# The ingest's pool uses mysqlclient; its errors must mean the same.
LOST_BY_DRIVER = [LOST, MySQLdb.OperationalError(2013, "Lost connection to server during query"),
                  MySQLdb.OperationalError(2013, "no answer from the shard within 0.8 s")]


class FakeConn:
    def __init__(self, commit_error: BaseException | None = None) -> None:
        self.commit_error = commit_error
        self.closed = False
        self.in_transaction = False

    def commit(self) -> None:
        if self.commit_error is not None:
            raise self.commit_error

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def get_autocommit(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def _pools(monkeypatch: pytest.MonkeyPatch, conn: FakeConn) -> ShardPools:
    shard = ShardConfig(index=0, name="shard1", port=3306, database="d", user="u", password_file=Path("/nonexistent"))
    pools = ShardPools([shard], Settings())
    monkeypatch.setattr(pools._pools[0], "take", lambda: conn)
    return pools


@pytest.mark.parametrize("lost", LOST_BY_DRIVER)
def test_lost_before_commit_is_unavailable_with_nothing_written(monkeypatch: pytest.MonkeyPatch,
                                                                lost: Exception) -> None:
    pools = _pools(monkeypatch, FakeConn())
    with pytest.raises(ShardUnavailable) as caught, pools.connect(0):
        raise lost
    assert caught.value.outcome_unknown is False


@pytest.mark.parametrize("lost", LOST_BY_DRIVER)
def test_lost_during_commit_is_outcome_unknown(monkeypatch: pytest.MonkeyPatch, lost: Exception) -> None:
    conn = FakeConn(commit_error=lost)
    pools = _pools(monkeypatch, conn)
    with pytest.raises(ShardUnavailable) as caught, pools.connect(0) as c:
        pool_mod.commit(c)
    assert caught.value.outcome_unknown is True
    assert conn.closed


@pytest.mark.parametrize("refusal", [pymysql.err.IntegrityError(1062, "dup"), MySQLdb.IntegrityError(1062, "dup"),
                                     MySQLdb.OperationalError(1213, "deadlock")])
def test_a_refused_commit_for_other_reasons_is_not_unavailable(monkeypatch: pytest.MonkeyPatch,
                                                               refusal: Exception) -> None:
    conn = FakeConn(commit_error=refusal)
    pools = _pools(monkeypatch, conn)
    with pytest.raises(type(refusal)), pools.connect(0) as c:
        pool_mod.commit(c)


def test_half_open_shard_is_probed_in_the_background_not_by_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung shard must cost a client at most one timeout, ever: once the breaker is open, every
    client call fails fast, and whether the shard is back is found out by a probe of the pool's
    own — started when the breaker opens, so a recovered shard is back in service without any
    client having to knock first."""
    import threading
    import time

    probes: list[str] = []
    answered = threading.Event()

    class Probe(FakeConn):
        def ping(self) -> None:
            probes.append("ping")
            answered.wait(5)  # the shard "hangs" until the test lets it answer

    monkeypatch.setattr(pool_mod, "timed_connect", lambda *a, **k: Probe())
    pools = _pools(monkeypatch, FakeConn())
    pools.breakers[0].open_s = 0.05
    with pytest.raises(ShardUnavailable), pools.connect(0):
        raise LOST
    deadline = time.monotonic() + 2
    while not probes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probes == ["ping"]  # no client call was needed for the probe to start
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(ShardUnavailable, match="breaker open"), pools.connect(0):
            pass
    assert time.monotonic() - started < 0.5  # no client waited on the hung probe
    assert probes == ["ping"]  # one probe at a time, however many clients knocked
    answered.set()
    deadline = time.monotonic() + 2
    while pools.breakers[0].state != "closed" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pools.breakers[0].state == "closed"
    with pools.connect(0):
        pass


class HangsAtRollback(FakeConn):
    """The shard answers the block's statements, then stops answering at the pool's ROLLBACK."""

    def __init__(self, lost: Exception) -> None:
        super().__init__()
        self.lost = lost

    def rollback(self) -> None:
        raise self.lost


def _pools_losing_at_rollback(monkeypatch: pytest.MonkeyPatch,
                              lost: Exception) -> tuple[ShardPools, HangsAtRollback, list[Any]]:
    monkeypatch.setattr(pool_mod, "timed_connect", lambda *a, **k: FakeConn())  # the watcher's probe
    conn = HangsAtRollback(lost)
    pools = _pools(monkeypatch, conn)
    given_back: list[Any] = []
    monkeypatch.setattr(pools._pools[0], "give_back", given_back.append)
    return pools, conn, given_back


@pytest.mark.parametrize("lost", LOST_BY_DRIVER)
def test_a_shard_lost_at_the_closing_rollback_leaves_the_blocks_answer_and_records_the_loss(
        monkeypatch: pytest.MonkeyPatch, lost: Exception) -> None:
    """A block that leaves its transaction open (a read) is rolled back by the pool on the way out.
    If the shard stops answering right then, the open transaction dies with the connection (the
    server rolls back what it loses), which is all the ROLLBACK was for: the block's answer stands.
    The loss is recorded like any other: breaker open, the connection dropped, never pooled again
    with a transaction the shard may still hold open."""
    pools, conn, given_back = _pools_losing_at_rollback(monkeypatch, lost)
    with pools.connect(0) as c:
        c.in_transaction = True  # a statement ran; no commit, no rollback
    assert conn.closed and given_back == []
    assert pools.breakers[0].state != "closed"


@pytest.mark.parametrize("lost", LOST_BY_DRIVER)
def test_a_shard_lost_at_the_rollback_after_a_failed_block_keeps_the_blocks_error_and_records_the_loss(
        monkeypatch: pytest.MonkeyPatch, lost: Exception) -> None:
    pools, conn, given_back = _pools_losing_at_rollback(monkeypatch, lost)
    with pytest.raises(ValueError, match="the block's own error"), pools.connect(0):
        raise ValueError("the block's own error")
    assert conn.closed and given_back == []
    assert pools.breakers[0].state != "closed"
