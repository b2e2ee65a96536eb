"""The one connection layer of every platform process: plain PyMySQL connections, pooled per shard
for the ingest, one per role for the relay and the workers. Every connection has connect, read and
write timeouts from the settings and stamps the ids it makes with its shard (DESIGN.md §2).

The ingest's pool is a small LIFO of idle connections behind a per-shard breaker: no ORM on the
request path (SQLAlchemy's pool and statement layer were ~18 % of an ingest worker's CPU)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.constants import CLIENT
from pymysql.cursors import Cursor

from payflow.config import Settings, ShardConfig
from payflow.db.shard_breaker import ShardBreaker
from payflow.domain.sharding import auto_increment_settings

# Client-side codes that mean "the server is not there" rather than "the query was wrong".
_UNAVAILABLE_CODES = {2003, 2006, 2013, 2002, 1053, 1927, 2055}
# A connection idle longer than this is pinged before use: the shard may have restarted since. Busy
# connections (reused within milliseconds under load) skip the round trip.
_PING_AFTER_IDLE_S = 1.0

if TYPE_CHECKING:
    Connection = pymysql.Connection[Any]
else:  # pymysql's Connection is generic only to type checkers
    Connection = pymysql.Connection

# One SQL statement and its parameters, for `execute_together`.
Statement = tuple[str, Sequence[Any]]


class ShardUnavailable(Exception):
    """The shard could not be used. `outcome_unknown` False: nothing of the request was committed
    (safe to retry anywhere, the gateway does); True: it went away while a COMMIT was in flight, so
    the change may be durable (retry only with the same idempotency key)."""

    def __init__(self, shard: ShardConfig, cause: BaseException, outcome_unknown: bool = False) -> None:
        super().__init__(f"shard {shard.name} ({shard.host}:{shard.port}) is unavailable: {cause}")
        self.shard = shard
        self.outcome_unknown = outcome_unknown


class CommitInterrupted(Exception):
    """The connection failed during COMMIT (raised by `commit`)."""


def commit(conn: Connection) -> None:
    """COMMIT, telling a failure during it apart from a failure before it."""
    try:
        conn.commit()
    except Exception as exc:
        if is_unavailable_error(exc):
            raise CommitInterrupted(str(exc)) from exc
        raise


def execute_together(cur: Cursor, statements: Sequence[Statement]) -> None:
    """Run statements whose results nobody reads in one round trip (a multi-statement query; the
    connection must have been opened with `multi_statements=True`). The server stops at the first
    failing statement; its error is raised here after the results before it are read, so the
    connection stays in sync and the caller can roll back as after any failed statement.

    Why: a round trip is most of what a statement costs the ingest (PyMySQL's packet handling, a
    wake-up of the worker and of the shard's thread); the writes that follow the last read of a
    transaction (payment update, outbox event, idempotency record) need no answer but "done"."""
    if not statements:
        return
    cur.execute(";".join(cur.mogrify(sql, args) for sql, args in statements))
    while cur.nextset():
        pass


def is_unavailable_error(exc: BaseException) -> bool:
    if isinstance(exc, CommitInterrupted):
        return True
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        code = exc.args[0] if exc.args else None
        return code in _UNAVAILABLE_CODES or isinstance(exc, pymysql.err.InterfaceError)
    return isinstance(exc, OSError | TimeoutError)


def direct_connect(shard: ShardConfig, shard_count: int, settings: Settings, autocommit: bool = False,
                   timeout_s: float | None = None, multi_statements: bool = False) -> Connection:
    """A plain PyMySQL connection in READ COMMITTED, ids stamped with its shard. `multi_statements`
    only for callers of `execute_together` (every value they send is escaped by PyMySQL)."""
    increment, offset = auto_increment_settings(shard.index, shard_count)
    read = timeout_s if timeout_s is not None else settings.db_read_timeout_s
    write = timeout_s if timeout_s is not None else settings.db_write_timeout_s
    where: dict[str, Any] = ({"unix_socket": str(shard.unix_socket)} if shard.unix_socket is not None
                             else {"host": shard.host, "port": shard.port})
    return pymysql.connect(
        **where,
        user=shard.user,
        password=shard.password(),
        database=shard.database,
        connect_timeout=min(settings.db_connect_timeout_s, read),
        read_timeout=read,
        write_timeout=write,
        autocommit=autocommit,
        charset="utf8mb4",
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
        init_command=(f"SET SESSION auto_increment_increment={increment}, auto_increment_offset={offset}, "
                      "tx_isolation='READ-COMMITTED'"),
    )


class _ShardPool:
    def __init__(self, shard: ShardConfig, shard_count: int, settings: Settings) -> None:
        self.shard = shard
        self.shard_count = shard_count
        self.settings = settings
        self.max_idle = settings.db_pool_size
        self._idle: collections.deque[tuple[Connection, float]] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> Connection:
        with self._lock:
            item = self._idle.pop() if self._idle else None
        if item is None:
            return self.open_connection()
        conn, since = item
        if time.monotonic() - since > _PING_AFTER_IDLE_S:
            started = time.monotonic()
            try:
                conn.ping(reconnect=False)
            except Exception:
                _close_quietly(conn)
                self.close_all()
                if time.monotonic() - started > self.settings.ingest_db_timeout_s / 2:
                    raise  # it timed out: the shard hangs; spend no second timeout on a reconnect
                # refused at once: a restarted shard; its idle siblings are as stale, start afresh
                return self.open_connection()
        return conn

    def open_connection(self) -> Connection:
        return direct_connect(self.shard, self.shard_count, self.settings,
                              timeout_s=self.settings.ingest_db_timeout_s, multi_statements=True)

    def give_back(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for conn, _ in idle:
            _close_quietly(conn)


class ShardPools:
    """The ingest's connections to every shard (any instance serves any merchant)."""

    def __init__(self, shards: list[ShardConfig], settings: Settings) -> None:
        self.shards = shards
        self._pools = [_ShardPool(s, len(shards), settings) for s in shards]
        self.breakers = [ShardBreaker(settings.shard_open_s) for _ in shards]
        self._watchers: dict[int, threading.Thread] = {}
        self._watchers_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.shards)

    @contextmanager
    def connect(self, index: int) -> Iterator[Connection]:
        """A pooled connection to shard `index`, behind its breaker. The caller commits; anything
        left open is rolled back. Server-gone errors and timeouts become ShardUnavailable and open
        the breaker; while it is open the call fails at once."""
        shard = self.shards[index]
        breaker = self.breakers[index]
        if not breaker.allow():
            self._watch(index)  # normally already running since the breaker opened
            raise ShardUnavailable(shard, RuntimeError("breaker open after recent failures"))
        pool = self._pools[index]
        try:
            conn = pool.take()
        except Exception as exc:
            breaker.failure()
            self._watch(index)
            raise ShardUnavailable(shard, exc) from exc
        try:
            yield conn
        except Exception as exc:
            if is_unavailable_error(exc):
                breaker.failure()
                self._watch(index)
                _close_quietly(conn)
                # Its idle siblings are as stale (a restarted shard): drop them, so the breaker's
                # trial after `shard_open_s` uses a fresh connection instead of failing again.
                pool.close_all()
                raise ShardUnavailable(shard, exc, outcome_unknown=isinstance(exc, CommitInterrupted)) from exc
            breaker.success()  # the shard answered; the request failed for its own reasons
            try:
                conn.rollback()
            except Exception:
                _close_quietly(conn)
                raise exc from None
            pool.give_back(conn)
            raise
        except BaseException:
            _close_quietly(conn)
            raise
        breaker.success()
        if _in_transaction(conn):
            conn.rollback()
        pool.give_back(conn)

    def _watch(self, index: int) -> None:
        """Make sure a watcher probes shard `index` until its breaker closes (one per shard)."""
        with self._watchers_lock:
            running = self._watchers.get(index)
            if running is not None and running.is_alive():
                return
            watcher = threading.Thread(target=self._probe_until_closed, args=(index,),
                                       name=f"shard-watch-{self.shards[index].name}", daemon=True)
            try:
                watcher.start()
            except RuntimeError:
                return  # no thread to be had now: the next failure or refused call tries again
            self._watchers[index] = watcher

    def _probe_until_closed(self, index: int) -> None:
        """While the breaker is not closed: wait until it is half-open, then make the trial."""
        breaker = self.breakers[index]
        while breaker.state != "closed":
            time.sleep(max(0.01, breaker.retry_after_s()))
            token = breaker.claim_trial()
            if token is not None:
                self._trial(index, token)

    def _trial(self, index: int, token: int) -> None:
        """The half-open breaker's trial, off the request path: a fresh connection and a ping,
        bounded by the ingest timeout. Success closes the breaker and keeps the connection."""
        pool, breaker = self._pools[index], self.breakers[index]
        conn: Connection | None = None
        try:
            conn = pool.open_connection()
            conn.ping(reconnect=False)
        except BaseException:
            if conn is not None:
                _close_quietly(conn)
            breaker.trial_done(token, ok=False)
            return
        breaker.trial_done(token, ok=True)
        pool.give_back(conn)

    def ready(self) -> dict[str, bool]:
        """Per-shard readiness from the breakers, without touching a shard (so /health never hangs)."""
        return {shard.name: breaker.state == "closed" for shard, breaker in zip(self.shards, self.breakers,
                                                                                 strict=True)}

    def dispose(self) -> None:
        for pool in self._pools:
            pool.close_all()


def _in_transaction(conn: Connection) -> bool:
    # SERVER_STATUS_IN_TRANS (0x1) from the last OK packet: no round trip needed.
    return bool(getattr(conn, "server_status", 0) & 1)


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        pass
