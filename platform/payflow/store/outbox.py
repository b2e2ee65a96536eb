"""`outbox_event`: append (ingest, refund worker), lease, mark, release, re-drive, requeue, prune,
and the relay's stats. The re-drive also reads `processed_event`, `parked_message` and
`consumer_progress` (which events a consumer lacks and has not parked, and whether every live
member has read past them) in the same statement; the prune keeps events parked and not replayed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import pymysql
from pymysql.cursors import Cursor, DictCursor

from payflow.domain import events
from payflow.domain.events import CONSUMERS_BY_EVENT
from payflow.store.parking import EVENT_KIND_VALUES, EVENT_KINDS_SQL


@dataclass(frozen=True)
class OutboxEvent:
    event_id: int
    aggregate_id: int
    event_type: str
    payload: dict[str, Any]
    retry_count: int
    # When the row was written, as epoch seconds converted by the shard that wrote it
    # (UNIX_TIMESTAMP in the shard's own time zone): the relay's host clock and zone never enter it.
    created_at_s: float

    @property
    def topic(self) -> str:
        return events.TOPIC_BY_EVENT[self.event_type]


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    published: int | None  # None: not counted (a count of every published row the table still holds)
    oldest_pending_age_s: float

    def as_json(self) -> dict[str, Any]:
        return {"pending": self.pending, "dead": self.dead, "published": self.published,
                "oldestPendingAgeSeconds": self.oldest_pending_age_s}


def encode_payload(payload: dict[str, Any]) -> str:
    """The one JSON encoding of a payload in the table."""
    return orjson.dumps(payload).decode()


def append_statement(payment_id: int, event_type: str, payload: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The INSERT that adds an event, for the caller to run inside the transaction that changes the
    payment (the ingest sends it together with the other writes: `db.pool.execute_together`)."""
    if event_type not in events.TOPIC_BY_EVENT:
        raise ValueError(f"unknown event type {event_type!r}")
    return ("INSERT INTO outbox_event (aggregate_type, aggregate_id, event_type, payload) VALUES (%s, %s, %s, %s)",
            ("payment", payment_id, event_type, encode_payload(payload)))


def append(cur: Cursor, payment_id: int, event_type: str, payload: dict[str, Any]) -> int:
    """Add an event inside the caller's transaction (the one that changes the payment); its id."""
    cur.execute(*append_statement(payment_id, event_type, payload))
    return int(cur.lastrowid)


def redrive_ids(cur: Cursor, event_ids: list[int]) -> int:
    """Put events back in the queue with a fresh retry budget (reconcile --repair); consumers
    dedupe, so re-sending is safe. Returns how many rows changed."""
    if not event_ids:
        return 0
    cur.execute(
        "UPDATE outbox_event SET published=0, dead=0, retry_count=0, next_attempt_at=NOW(6), "
        f"redrive_count=redrive_count+1 WHERE event_id IN ({','.join(['%s'] * len(event_ids))})",
        tuple(event_ids),
    )
    return int(cur.rowcount)


def prune_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` published rows older than `older_than_s` whatever their
    consumers did, oldest first (index ix_pub_created): for rows past the consumers' age limit,
    which no consumer would accept any more. Never DEAD or pending rows, nor an event parked and not
    replayed (a person may still replay it). Ordered as `count_unapplied` orders them, ties included,
    so the lost count names the rows deleted."""
    return ("DELETE FROM outbox_event WHERE published=1 AND created_at < NOW(6) - INTERVAL %s MICROSECOND "
            f"AND {_NOT_PARKED} ORDER BY created_at, event_id LIMIT %s",
            (int(older_than_s * 1e6), *EVENT_KIND_VALUES, batch))


_NOT_PARKED = ("NOT EXISTS (SELECT 1 FROM parked_message k WHERE k.event_id=outbox_event.event_id "
               f"AND k.kind IN ({EVENT_KINDS_SQL}) AND k.replayed_at IS NULL)")


def _applied_by_all(consumers: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """SQL true when every one of `consumers` that takes the row's type has it in its inbox."""
    sql, args = "1", []
    for consumer in consumers:
        types = sorted(events.EVENTS_BY_CONSUMER[consumer])
        sql += (f" AND (event_type NOT IN ({','.join(['%s'] * len(types))}) OR EXISTS (SELECT 1 FROM "
                "processed_event p WHERE p.consumer=%s AND p.event_id=outbox_event.event_id))")
        args += [*types, consumer]
    return sql, tuple(args)


@dataclass
class PruneCursor:
    """Where the consumed-rows prune goes on from (created_at, event_id of the last row it looked
    at): rows a consumer still lacks are stepped over once, not re-read by every batch. In memory:
    a relay that restarts reads them once more."""
    created_at: datetime | None = None
    event_id: int = 0


def prune_applied(cur: Cursor, older_than_s: float, batch: int, consumers: tuple[str, ...],
                  cursor: PruneCursor) -> tuple[int, int]:
    """Look at the next `batch` published rows older than the retention (index ix_pub_created, from
    `cursor` on) and delete those every configured consumer of their type has applied and none has
    parked; the others stay, for the re-drive, until the consumers' age limit (`prune_statement`).
    (rows looked at, rows deleted)."""
    applied, applied_args = _applied_by_all(consumers)
    after, after_args = "", cast(tuple[Any, ...], ())
    if cursor.created_at is not None:
        after = "AND created_at >= %s AND NOT (created_at = %s AND event_id <= %s) "
        after_args = (cursor.created_at, cursor.created_at, cursor.event_id)
    cur.execute("SELECT event_id, created_at FROM outbox_event FORCE INDEX (ix_pub_created) WHERE published=1 "
                f"AND created_at < NOW(6) - INTERVAL %s MICROSECOND {after}ORDER BY created_at, event_id LIMIT %s",
                (int(older_than_s * 1e6), *after_args, batch))
    rows = cur.fetchall()
    if not rows:
        return 0, 0
    cursor.created_at, cursor.event_id = rows[-1][1], int(rows[-1][0])
    ids = [int(r[0]) for r in rows]
    # the conditions again in the DELETE: a row replayed or parked since the SELECT stays
    cur.execute(f"DELETE FROM outbox_event WHERE event_id IN ({','.join(['%s'] * len(ids))}) AND published=1 "
                f"AND {_NOT_PARKED} AND {applied}", (*ids, *EVENT_KIND_VALUES, *applied_args))
    return len(rows), int(cur.rowcount)


def count_unapplied(cur: Cursor, older_than_s: float, batch: int, consumers: tuple[str, ...]) -> int:
    """Of the `batch` oldest rows past `older_than_s` that `prune_statement` deletes next, how many
    a configured consumer never applied (read just before that DELETE: lost for that consumer)."""
    applied, applied_args = _applied_by_all(consumers)
    cur.execute("SELECT COUNT(*) FROM (SELECT event_id, event_type FROM outbox_event WHERE published=1 AND "
                f"created_at < NOW(6) - INTERVAL %s MICROSECOND AND {_NOT_PARKED} "
                "ORDER BY created_at, event_id LIMIT %s) "
                f"outbox_event WHERE NOT ({applied})", (int(older_than_s * 1e6), *EVENT_KIND_VALUES, batch,
                                                        *applied_args))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def first_event_id(cur: Cursor) -> int:
    """Where the table begins (the primary key's first entry: one index read); 0 when empty."""
    cur.execute("SELECT COALESCE(MIN(event_id), 0) FROM outbox_event")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def requeue(cur: Cursor, event_id: int, created_within_s: float) -> int:
    """Queue one event to be published again now, with a fresh retry budget (`outbox replay
    --parked`, in the transaction that marks its parked rows replayed), if it was created within
    `created_within_s`: an older one may have lost the inbox rows that dedupe it. Rows changed: 0 or 1."""
    cur.execute("UPDATE outbox_event SET published=0, dead=0, retry_count=0, next_attempt_at=NOW(6) "
                "WHERE event_id=%s AND created_at >= NOW(6) - INTERVAL %s MICROSECOND",
                (event_id, int(created_within_s * 1e6)))
    return int(cur.rowcount)


def read_stats(cur: Cursor, count_published: bool = True) -> OutboxStats:
    """Pending and dead from their indexes (ix_pending, ix_dead: small ranges). The published count
    reads every published row the retention keeps (ix_pub_created), so it is only made on demand
    (`payctl outbox`), not on the relay's every housekeeping pass."""
    cur.execute("SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) FROM outbox_event "
                "WHERE published=0 AND dead=0")
    pending_row = cur.fetchone()
    cur.execute("SELECT COUNT(*) FROM outbox_event WHERE dead=1")
    dead_row = cur.fetchone()
    published: int | None = None
    if count_published:
        cur.execute("SELECT COUNT(*) FROM outbox_event WHERE published=1")
        published_row = cur.fetchone()
        published = int(published_row[0] if published_row else 0)
    pending, age_us = pending_row if pending_row else (0, None)
    return OutboxStats(int(pending or 0), int(dead_row[0] if dead_row else 0), published,
                       (int(age_us) / 1e6) if age_us is not None else 0.0)


def stuck(cur: DictCursor, older_than_s: float, limit: int) -> list[dict[str, Any]]:
    """Unpublished (or dead) events created more than `older_than_s` ago (read-only; payctl)."""
    cur.execute("SELECT event_id, event_type, aggregate_id AS payment_id, retry_count, dead, last_error, "
                "created_at, next_attempt_at, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) / 1e6 AS age_s "
                "FROM outbox_event WHERE published = 0 AND created_at < NOW(6) - INTERVAL %s MICROSECOND "
                "ORDER BY event_id LIMIT %s", (int(older_than_s * 1e6), limit))
    return list(cur.fetchall())


# A member's progress row counts while it is this fresh; events must be this much older than it.
PROGRESS_FRESH_S = 120.0  # longer than any rejoin: a member that is merely rejoining still counts
PROGRESS_MARGIN_S = 5.0
# Rows older than this are settled: no transaction that could still commit a smaller id is open (the
# longest is a lock wait, innodb_lock_wait_timeout, 50 s).
SETTLE_S = 60.0
_ID_MAX = 2**63 - 1


def _newest_created_before(cur: Cursor, age_s: float) -> int | None:
    """The id of the newest row created more than `age_s` ago, read from ix_created (one row)."""
    cur.execute("SELECT event_id FROM outbox_event WHERE created_at < NOW(6) - INTERVAL %s MICROSECOND "
                "ORDER BY created_at DESC, event_id DESC LIMIT 1", (int(age_s * 1e6),))
    row = cur.fetchone()
    return int(row[0]) if row else None


def _lost_scan_top(cur: Cursor, age_s: float) -> int | None:
    """The highest id the lost-event scan must read: None for "to the end of the table", 0 when no
    row is old enough to be lost yet.

    A row's creation time is when its INSERT started and its id comes later, so concurrent inserts
    can get the two in opposite orders: an old row can carry a higher id than the newest row old
    enough. That row's id was handed out before any row created after it started; so while some
    row is younger than `age_s`, the newest old-enough row bounds it as soon as those later rows
    have aged too, and once no row is younger the scan runs to the end (cheap then: no young rows).
    A row can thus be found one re-drive interval late, never not at all."""
    cur.execute("SELECT created_at >= NOW(6) - INTERVAL %s MICROSECOND FROM outbox_event "
                "ORDER BY created_at DESC LIMIT 1", (int(age_s * 1e6),))
    newest = cur.fetchone()
    if newest is None or not newest[0]:
        return None
    return _newest_created_before(cur, age_s) or 0


def next_watermark(current: int, first_missing: int | None, newest_settled: int | None) -> int:
    """Where the next re-drive scan may start (pure): not past the oldest event the consumer still
    lacks, not past rows younger than the settle time, and never backwards."""
    safe_top = newest_settled + 1 if newest_settled is not None else current
    candidate = min(first_missing, safe_top) if first_missing is not None else safe_top
    return max(current, candidate)


# Without an age limit (tests, tools): ten years, i.e. none.
_TOO_OLD_DEFAULT_S = 10 * 365 * 24 * 3600.0


class OutboxStore:
    def __init__(self, conn: pymysql.Connection[Any]) -> None:
        self.conn = conn

    def lease(self, limit: int, lease_s: float) -> list[OutboxEvent]:
        """Claim due rows (SKIP LOCKED lets several relays share a shard) and push their next
        attempt out by `lease_s`, so a relay that dies mid-publish leaves them to be retried."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT event_id, aggregate_id, event_type, payload, retry_count, UNIX_TIMESTAMP(created_at) "
                "FROM outbox_event "
                "WHERE published=0 AND dead=0 AND next_attempt_at<=NOW(6) ORDER BY event_id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            rows = cur.fetchall()
            if rows:
                ids = [r[0] for r in rows]
                cur.execute(
                    "UPDATE outbox_event SET next_attempt_at=NOW(6) + INTERVAL %s MICROSECOND "
                    f"WHERE event_id IN ({','.join(['%s'] * len(ids))})",
                    (int(lease_s * 1e6), *ids),
                )
        self.conn.commit()
        return [
            OutboxEvent(int(r[0]), int(r[1]), str(r[2]), orjson.loads(r[3]), int(r[4]), float(r[5])) for r in rows
        ]

    def _update_ids(self, assignments: str, event_ids: list[int]) -> None:
        if not event_ids:
            return
        with self.conn.cursor() as cur:
            cur.execute(f"UPDATE outbox_event SET {assignments} "
                        f"WHERE event_id IN ({','.join(['%s'] * len(event_ids))})", tuple(event_ids))
        self.conn.commit()

    def mark_published(self, event_ids: list[int]) -> None:
        self._update_ids("published=1, published_at=NOW(6), last_error=NULL", event_ids)

    def mark_failed(self, event_id: int, delay_s: float, error: str, dead: bool) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE outbox_event SET retry_count=retry_count+1, last_retry_at=NOW(6), "
                "next_attempt_at=NOW(6) + INTERVAL %s MICROSECOND, last_error=%s, dead=%s WHERE event_id=%s",
                (int(delay_s * 1e6), error[:500], 1 if dead else 0, event_id),
            )
        self.conn.commit()

    def defer(self, event_ids: list[int], delay_s: float, error: str) -> None:
        """The broker was unreachable: try again after `delay_s`; retry_count is untouched, because
        no outage, however long, may kill an event."""
        if not event_ids:
            return
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE outbox_event SET last_retry_at=NOW(6), next_attempt_at=NOW(6) + INTERVAL %s MICROSECOND, "
                f"last_error=%s WHERE event_id IN ({','.join(['%s'] * len(event_ids))})",
                (int(delay_s * 1e6), error[:500], *event_ids),
            )
        self.conn.commit()

    def release(self, event_ids: list[int]) -> None:
        """Hand back leased rows that were never attempted (breaker refused): due again now."""
        self._update_ids("next_attempt_at=NOW(6)", event_ids)

    def redrive_unprocessed(self, older_than_s: float, consumers: list[str], watermarks: dict[str, int],
                            limit: int = 1000, too_old_s: float | None = None) -> int:
        """Events published long ago that a consumer never processed (the broker lost them):
        mark unpublished so the relay sends them again. Consumers dedupe, so this is safe.

        `watermarks` (consumer → event id, updated in place) bound the scan: every live event
        below a consumer's watermark is known processed. Rows younger than `older_than_s` cannot
        be lost yet and rows younger than SETTLE_S cannot move a watermark, so each scan also stops
        at the newest row old enough (found through ix_created, one row): a pass reads the rows
        between the watermark and `older_than_s` ago, never the young part of the table, which it
        used to read three times per consumer on every pass (at 700/s, a quarter of a shard's CPU).
        Creation times and ids may disagree across concurrent inserts: `_lost_scan_top` says why
        that delays a lost row by at most one interval once the rows after it have aged.

        A consumer with no watermark yet (a relay that just started: they are kept in memory)
        starts where the table begins, not at id 0: below it retention has deleted every row, and
        a range read from 0 would step over all of them that InnoDB has not purged yet.

        Rows created more than `too_old_s` ago are left alone: consumers would refuse them as
        expired (and park them, even those that applied them long ago)."""
        total = 0
        too_old_us = int((too_old_s if too_old_s is not None else _TOO_OLD_DEFAULT_S) * 1e6)
        with self.conn.cursor() as cur:
            lost_top = _lost_scan_top(cur, older_than_s)
            settled = _newest_created_before(cur, SETTLE_S)
            table_start = first_event_id(cur) if any(c not in watermarks for c in consumers) else 0
            for consumer in consumers:
                types = [t for t, cs in CONSUMERS_BY_EVENT.items() if consumer in cs]
                if not types:
                    continue
                in_types = ",".join(["%s"] * len(types))
                # A parked event is terminal for its consumer until replayed: neither lost nor missing.
                unprocessed = (f"e.event_id >= %s AND e.event_id <= %s AND e.dead=0 AND e.event_type IN ({in_types}) "
                               "AND NOT EXISTS (SELECT 1 FROM processed_event p WHERE p.consumer=%s "
                               "AND p.event_id=e.event_id) "
                               "AND NOT EXISTS (SELECT 1 FROM parked_message k WHERE k.event_id=e.event_id "
                               f"AND k.consumer=%s AND k.kind IN ({EVENT_KINDS_SQL}) AND k.replayed_at IS NULL)")
                parked_args = (consumer, *EVENT_KIND_VALUES)
                start = watermarks.get(consumer, table_start)
                top = lost_top if lost_top is not None else _ID_MAX
                if top >= start:
                    # Lost, not lagging: every live member of the group has read past it.
                    cur.execute(
                        f"SELECT e.event_id FROM outbox_event e WHERE {unprocessed} AND e.published=1 "
                        "AND e.published_at < NOW(6) - INTERVAL %s MICROSECOND "
                        "AND e.created_at >= NOW(6) - INTERVAL %s MICROSECOND "
                        "AND e.published_at < (SELECT MIN(caught_up_to) FROM consumer_progress WHERE consumer=%s "
                        "AND updated_at > NOW(6) - INTERVAL %s MICROSECOND) - INTERVAL %s MICROSECOND "
                        "ORDER BY e.event_id LIMIT %s",
                        (start, top, *types, consumer, *parked_args, int(older_than_s * 1e6), too_old_us, consumer,
                         int(PROGRESS_FRESH_S * 1e6), int(PROGRESS_MARGIN_S * 1e6), limit),
                    )
                    lost = [int(r[0]) for r in cur.fetchall()]
                    if lost:
                        cur.execute(
                            "UPDATE outbox_event SET published=0, next_attempt_at=NOW(6), "
                            f"redrive_count=redrive_count+1 WHERE event_id IN ({','.join(['%s'] * len(lost))})",
                            tuple(lost),
                        )
                        total += cur.rowcount
                # Advance to the oldest event this consumer still lacks (in flight, pending or lost), but
                # never past settled rows: a transaction still open may yet commit a smaller id than
                # rows already visible. Only a missing event below that bound can hold the watermark.
                first_missing = None
                if settled is not None and settled >= start:
                    cur.execute(f"SELECT e.event_id FROM outbox_event e WHERE {unprocessed} "
                                "ORDER BY e.event_id LIMIT 1", (start, settled, *types, consumer, *parked_args))
                    first_missing = cur.fetchone()
                watermarks[consumer] = next_watermark(
                    start, int(first_missing[0]) if first_missing else None, settled)
        self.conn.commit()
        return total

    def stats(self, count_published: bool = True) -> OutboxStats:
        with self.conn.cursor() as cur:
            stats = read_stats(cur, count_published)
        self.conn.commit()
        return stats
