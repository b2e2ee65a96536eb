"""The relay's outbox store on a real shard: leases hold against a second relay and are visible at
once, marks are durable at once, released rows are due again; the re-drive finds lost events and
does not re-read the young part of the table on every pass. Copies of the tables in their own
database keep the live relays out of the way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from payflow.domain import events
from payflow.store.outbox import OutboxStore, append
from tests.integration.conftest import REDRIVE_TABLES, table_copies

pytestmark = pytest.mark.integration
DB = "outbox_store_check"


def _connect(stack: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", database=DB,
                           autocommit=False, init_command="SET SESSION tx_isolation='READ-COMMITTED'")


@pytest.fixture()
def outbox(stack: Any) -> Iterator[Any]:
    with table_copies(stack, DB, REDRIVE_TABLES) as admin:
        yield admin


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


def _last_id(cur: Any) -> int:
    cur.execute(f"SELECT COALESCE(MAX(event_id), 0) FROM {DB}.outbox_event")
    return int(cur.fetchone()[0])


def _ids_after(cur: Any, before: int) -> list[int]:
    cur.execute(f"SELECT event_id FROM {DB}.outbox_event WHERE event_id > %s ORDER BY event_id", (before,))
    return [int(r[0]) for r in cur.fetchall()]


def _insert_events(admin: pymysql.Connection[Any], count: int, created_s_ago: float, processed_by: str | None,
                   first_aggregate: int) -> list[int]:
    """`count` published AUTHORIZED events created `created_s_ago` seconds ago (published a second
    later), processed by `processed_by` (or by nobody); their ids."""
    with admin.cursor() as cur:
        before = _last_id(cur)
        cur.execute(
            f"INSERT INTO {DB}.outbox_event (aggregate_type, aggregate_id, event_type, payload, published, "
            "published_at, created_at, next_attempt_at) "
            f"SELECT 'payment', {first_aggregate} + seq, %s, '{{}}', 1, NOW(6) - INTERVAL %s MICROSECOND, "
            f"NOW(6) - INTERVAL %s MICROSECOND, NOW(6) - INTERVAL %s MICROSECOND FROM {DB}.seq_1_to_{count}",
            (events.AUTHORIZED, int((created_s_ago - 1) * 1e6), int(created_s_ago * 1e6), int(created_s_ago * 1e6)))
        ids = _ids_after(cur, before)
        if processed_by is not None:
            cur.execute(f"INSERT INTO {DB}.processed_event (consumer, event_id) "
                        f"SELECT %s, event_id FROM {DB}.outbox_event WHERE event_id > %s", (processed_by, before))
    return ids


def _rows_read(conn: pymysql.Connection[Any]) -> int:
    """Index and table rows this session has read so far (the counters SHOW STATUS itself leaves alone)."""
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_next', 'Handler_read_prev', "
                    "'Handler_read_key', 'Handler_read_first', 'Handler_read_last')")
        return sum(int(value) for _, value in cur.fetchall())


def test_the_redrive_finds_lost_events_and_leaves_young_ones(stack: Any, outbox: Any) -> None:
    with outbox.cursor() as cur:  # the ledger's members have read up to now
        cur.execute(f"INSERT INTO {DB}.consumer_progress VALUES ('ledger', 'm1', NOW(6), NOW(6))")
    settled = _insert_events(outbox, 50, created_s_ago=120, processed_by="ledger", first_aggregate=1000)
    [lost] = _insert_events(outbox, 1, created_s_ago=45, processed_by=None, first_aggregate=2000)
    [in_flight] = _insert_events(outbox, 1, created_s_ago=5, processed_by=None, first_aggregate=3000)
    store, watermarks = OutboxStore(_connect(stack)), {}
    assert store.redrive_unprocessed(30, ["ledger", "refund", "settlement"], watermarks) == 1
    published = {event_id: pub for event_id, (pub, _) in _rows(outbox).items()}
    assert published[lost] == 0 and published[in_flight] == 1  # due again / left to its consumer
    assert all(published[event_id] == 1 for event_id in settled)
    # Nothing below the watermark is missing, and it never passes what the ledger still lacks.
    assert settled[-1] < watermarks["ledger"] <= lost


def test_an_event_too_old_for_any_consumer_is_not_re_driven(stack: Any, outbox: Any) -> None:
    """A row kept for a consumer that never applied it is re-driven while the consumers would still
    accept it; past `too_old_s` (their age limit less the re-drive window) it would arrive expired
    everywhere, and be parked by consumers that applied it long ago: it stays where it is."""
    with outbox.cursor() as cur:
        cur.execute(f"INSERT INTO {DB}.consumer_progress VALUES ('ledger', 'm1', NOW(6), NOW(6))")
    [young] = _insert_events(outbox, 1, created_s_ago=600, processed_by=None, first_aggregate=1000)
    [old] = _insert_events(outbox, 1, created_s_ago=3600, processed_by=None, first_aggregate=2000)
    store = OutboxStore(_connect(stack))
    assert store.redrive_unprocessed(30, ["ledger"], {}, too_old_s=1800) == 1
    rows = _rows(outbox)
    assert rows[young][0] == 0 and rows[old][0] == 1


def test_a_lost_event_whose_id_came_after_a_newer_row_is_redriven_on_a_quiet_shard(stack: Any, outbox: Any) -> None:
    """Creation time is when the INSERT started, the id comes later: two concurrent inserts can
    get them in opposite orders. Here the lost event is the older one with the higher id, and no
    row comes after it: bounding the scan by "the newest row old enough" must not hide it."""
    with outbox.cursor() as cur:
        cur.execute(f"INSERT INTO {DB}.consumer_progress VALUES ('ledger', 'm1', NOW(6), NOW(6))")
    _insert_events(outbox, 1, created_s_ago=40, processed_by="ledger", first_aggregate=1000)
    [lost] = _insert_events(outbox, 1, created_s_ago=45, processed_by=None, first_aggregate=2000)
    store = OutboxStore(_connect(stack))
    assert store.redrive_unprocessed(30, ["ledger"], {}) == 1
    assert _rows(outbox)[lost][0] == 0


def test_a_redrive_pass_does_not_reread_the_young_part_of_the_table(stack: Any, outbox: Any) -> None:
    """Rows younger than the settle time stay above the watermarks; a pass used to scan all of them
    several times per consumer (~60 s of traffic, every `redrive_interval_s`: at 700/s a quarter of
    a shard's CPU). Counted in rows the shard read, not in time."""
    young = 3000
    with outbox.cursor() as cur:
        for consumer in ("ledger", "refund", "settlement"):
            cur.execute(f"INSERT INTO {DB}.consumer_progress VALUES (%s, 'm1', NOW(6), NOW(6))", (consumer,))
    _insert_events(outbox, 200, created_s_ago=120, processed_by="ledger", first_aggregate=1000)
    conn = _connect(stack)
    store, watermarks = OutboxStore(conn), {}
    assert store.redrive_unprocessed(30, ["ledger", "refund", "settlement"], watermarks) == 0
    _insert_events(outbox, young, created_s_ago=10, processed_by="ledger", first_aggregate=5000)
    before = _rows_read(conn)
    assert store.redrive_unprocessed(30, ["ledger", "refund", "settlement"], watermarks) == 0
    read = _rows_read(conn) - before
    assert read < young // 4, f"one pass read {read} rows for {young} young ones"


def test_the_relays_backlog_figures_do_not_count_every_published_row(stack: Any, outbox: Any) -> None:
    """The relay refreshes pending / oldest / dead on every housekeeping pass; counting the published
    rows too meant reading every one of them (the table holds them for the retention) each pass.
    `payctl outbox` still counts them, on demand."""
    published = 3000
    _insert_events(outbox, published, created_s_ago=20, processed_by=None, first_aggregate=1000)
    conn = _connect(stack)
    store = OutboxStore(conn)
    full = store.stats()
    assert full.published == published and full.pending == 0
    before = _rows_read(conn)
    backlog = store.stats(count_published=False)
    read = _rows_read(conn) - before
    assert (backlog.pending, backlog.dead, backlog.published) == (0, 0, None)
    assert backlog.as_json()["published"] is None
    assert read < published // 10, f"the backlog figures read {read} rows"


def _insert_pending(admin: pymysql.Connection[Any], count: int, due_in_s: float) -> list[int]:
    """`count` unpublished AUTHORIZED events, due in `due_in_s` seconds (negative: due already)."""
    with admin.cursor() as cur:
        before = _last_id(cur)
        cur.execute(f"INSERT INTO {DB}.outbox_event (aggregate_type, aggregate_id, event_type, payload, "
                    f"next_attempt_at) SELECT 'payment', seq, %s, '{{}}', NOW(6) + INTERVAL %s MICROSECOND "
                    f"FROM {DB}.seq_1_to_{count}", (events.AUTHORIZED, int(due_in_s * 1e6)))
        return _ids_after(cur, before)


def _lease_counting_rows(stack: Any, limit: int) -> tuple[list[int], int]:
    """One lease on a fresh connection: the ids leased and the rows the shard read for it."""
    conn = _connect(stack)
    before = _rows_read(conn)
    leased = OutboxStore(conn).lease(limit, lease_s=30)
    return [e.event_id for e in leased], _rows_read(conn) - before


def test_a_lease_reads_about_a_batch_not_the_whole_backlog(stack: Any, outbox: Any) -> None:
    """A relay behind by 800 events leases the 200 oldest in event_id order (DESIGN: batches in
    event_id order) reading about those 200, not every due row: a lease used to read and sort the
    whole backlog, so the further behind the relay was, the more each lease cost."""
    _insert_events(outbox, 20000, created_s_ago=120, processed_by=None, first_aggregate=0)  # published
    due = _insert_pending(outbox, 800, due_in_s=-1)
    leased, read = _lease_counting_rows(stack, 200)
    assert leased == due[:200]
    assert read < 450, f"a lease of 200 read {read} rows"  # two per row leased; it was ~1,000


def test_in_an_outage_a_lease_reads_the_due_rows_not_the_deferred_ones(stack: Any, outbox: Any) -> None:
    """Broker down: most of the backlog waits for its next attempt. A lease must find the few due
    rows without reading the deferred ones."""
    _insert_events(outbox, 20000, created_s_ago=120, processed_by=None, first_aggregate=0)  # published
    _insert_pending(outbox, 5000, due_in_s=300)
    due = _insert_pending(outbox, 10, due_in_s=-1)
    leased, read = _lease_counting_rows(stack, 200)
    assert leased == due
    assert read < 500, f"a lease of the 10 due rows read {read} rows"


def test_a_restarted_relays_watermark_starts_where_the_table_begins(stack: Any, outbox: Any) -> None:
    """Watermarks live in the relay's memory: after a restart they used to start at id 0, below
    every row retention had already deleted, and stay there while no row was settled."""
    pruned = _insert_events(outbox, 100, created_s_ago=120, processed_by="ledger", first_aggregate=1000)
    with outbox.cursor() as cur:  # retention deleted the old rows
        cur.execute(f"DELETE FROM {DB}.outbox_event WHERE event_id <= %s", (pruned[-1],))
    young = _insert_events(outbox, 10, created_s_ago=10, processed_by=None, first_aggregate=2000)
    watermarks: dict[str, int] = {}
    assert OutboxStore(_connect(stack)).redrive_unprocessed(30, ["ledger", "settlement"], watermarks) == 0
    assert watermarks == {"ledger": young[0], "settlement": young[0]}
