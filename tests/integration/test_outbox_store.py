"""The relay's outbox store on a real shard: leases hold against a second relay and are visible at
once, marks are durable at once, released rows are due again. A copy of the table in its own
database keeps the live relays out of the way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from payflow.domain import events
from payflow.outbox.store import OutboxStore, append

pytestmark = pytest.mark.integration
DB = "outbox_store_check"


def _connect(stack: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", database=DB,
                           autocommit=False, init_command="SET SESSION tx_isolation='READ-COMMITTED'")


@pytest.fixture()
def outbox(stack: Any) -> Iterator[Any]:
    admin = pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.outbox_event LIKE {stack.topo.database}.outbox_event")
    try:
        yield admin
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        admin.close()


def _rows(admin: pymysql.Connection[Any]) -> dict[int, tuple[int, bool]]:
    """event id → (published, due now), read by another session."""
    with admin.cursor() as cur:
        cur.execute(f"SELECT event_id, published, next_attempt_at <= NOW(6) FROM {DB}.outbox_event")
        return {int(r[0]): (int(r[1]), bool(r[2])) for r in cur.fetchall()}


def test_leases_marks_and_releases_are_committed_at_once(stack: Any, outbox: Any) -> None:
    writer = _connect(stack)
    with writer.cursor() as cur:
        ids = [append(cur, 100 + i, events.AUTHORIZED, {"paymentId": 100 + i}) for i in range(5)]
    writer.commit()
    relay, other = OutboxStore(_connect(stack)), OutboxStore(_connect(stack))

    leased = relay.lease(3, lease_s=30)
    assert [e.event_id for e in leased] == ids[:3]
    # committed at once: another session sees the lease, and another relay gets only the rest
    assert [due for _, (_, due) in sorted(_rows(outbox).items())] == [False, False, False, True, True]
    assert [e.event_id for e in other.lease(10, lease_s=30)] == ids[3:]
    assert relay.lease(10, lease_s=30) == []  # nothing due: the empty lease ends its transaction too

    relay.mark_published(ids[:3])
    assert [pub for _, (pub, _) in sorted(_rows(outbox).items())] == [1, 1, 1, 0, 0]
    relay.release(ids[3:])
    assert [due for _, (_, due) in sorted(_rows(outbox).items())][3:] == [True, True]
    assert [e.event_id for e in relay.lease(10, lease_s=30)] == ids[3:]
