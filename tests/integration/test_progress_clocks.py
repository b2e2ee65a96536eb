"""The relay's re-drive decision on a real shard does not depend on the consumer host's clock or
time zone: a member records how long ago it had read everything, the shard turns that into a time.
The member runs in a subprocess with another TZ and a skewed wall clock; the events and the
re-drive use a copy of the tables in their own database, away from the live relays."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from payflow.domain import events
from payflow.store.outbox import OutboxStore
from tests.integration.conftest import REDRIVE_TABLES, table_copies

pytestmark = pytest.mark.integration
DB = "progress_clock_check"

# A member 30 s behind: the log end it has reached was reported by the broker 30 s ago on the
# host's (skewed) wall clock, a newer end is not reached yet. The same steps as ConsumerWorker.
MEMBER = """
import sys, time
import pymysql
from payflow.consumers.progress import LogMarks, behind_s, member_read_through
from payflow.store import progress
skew = float(sys.argv[2])
wall, mono = time.time() + skew, time.monotonic()
marks = LogMarks()
marks.observe("p", 10, mono - max(0.0, wall - (wall - 30)))
marks.observe("p", 20, mono)
read_through = member_read_through({"p": marks.read_through("p", 10)})
conn = pymysql.connect(unix_socket=sys.argv[1], user="root", database=sys.argv[3])
progress.record(conn, "ledger", "m1", behind_s(time.monotonic(), read_through))
"""


@pytest.fixture()
def tables(stack: Any) -> Iterator[pymysql.Connection[Any]]:
    with table_copies(stack, DB, REDRIVE_TABLES) as admin:
        yield admin


def _published(admin: pymysql.Connection[Any], aggregate: int, published_s_ago: float) -> int:
    """An AUTHORIZED event published `published_s_ago` seconds ago that no consumer processed."""
    with admin.cursor() as cur:
        cur.execute(f"INSERT INTO {DB}.outbox_event (aggregate_type, aggregate_id, event_type, payload, published, "
                    "published_at, created_at, next_attempt_at) VALUES ('payment', %s, %s, '{}', 1, "
                    "NOW(6) - INTERVAL %s MICROSECOND, NOW(6) - INTERVAL %s MICROSECOND, NOW(6))",
                    (aggregate, events.AUTHORIZED, int(published_s_ago * 1e6), int((published_s_ago + 1) * 1e6)))
        return int(cur.lastrowid)


@pytest.mark.parametrize(("tz", "skew_s"), [("UTC", 0.0), ("Pacific/Kiritimati", 0.0), ("Pacific/Pago_Pago", 0.0),
                                            ("UTC", 14 * 3600.0), ("UTC", -14 * 3600.0)])
def test_the_redrive_decision_is_the_same_whatever_the_members_clock(stack: Any, tables: Any, tz: str,
                                                                     skew_s: float) -> None:
    lost = _published(tables, 1, published_s_ago=45)  # before the member's progress: lost
    lagging = _published(tables, 2, published_s_ago=20)  # after it: the member has not read it yet
    socket = str(stack.backend.paths.db_socket("vm1"))
    subprocess.run([sys.executable, "-c", MEMBER, socket, str(skew_s), DB], check=True, timeout=60,
                   env={**os.environ, "TZ": tz})
    with tables.cursor() as cur:
        cur.execute(f"SELECT TIMESTAMPDIFF(MICROSECOND, caught_up_to, NOW(6)) / 1e6 FROM {DB}.consumer_progress")
        [(behind,)] = cur.fetchall()
    assert 29 <= float(behind) <= 33
    conn = pymysql.connect(unix_socket=socket, user="root", database=DB, autocommit=False)
    try:
        assert OutboxStore(conn).redrive_unprocessed(10, ["ledger"], {}) == 1
    finally:
        conn.close()  # an open transaction here would hold the tables and hang the fixture's DROP
    with tables.cursor() as cur:
        cur.execute(f"SELECT event_id, published FROM {DB}.outbox_event")
        assert dict(cur.fetchall()) == {lost: 0, lagging: 1}
