"""The one connection layer of every platform process: plain PyMySQL connections, one per role for
the relay and the workers, and the ingest's pool of mysqlclient connections per shard. Every
connection has connect, read and write timeouts from the settings and stamps the ids it makes with
its shard (DESIGN.md §2).

The ingest's pool is a small LIFO of idle connections behind a per-shard breaker: no ORM on the
request path (SQLAlchemy's pool and statement layer were ~18 % of an ingest worker's CPU), and a C
client (mysqlclient on libmariadb): `bench/bench_round_trips.py` measured the authorize transaction
at about half the client CPU of PyMySQL. Its answers are awaited with a bound in fractions of a
second (`TimedConnection`), which libmariadb's own whole-second timeouts cannot give."""

from __future__ import annotations

import collections
import math
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import MySQLdb
import MySQLdb.connections
import MySQLdb.cursors
import pymysql
from MySQLdb.constants import CLIENT as MYSQLDB_CLIENT

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

# The errors of both drivers, so callers need not know which one a connection uses.
OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (pymysql.err.OperationalError, MySQLdb.OperationalError)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (pymysql.err.IntegrityError, MySQLdb.IntegrityError)
_INTERFACE_ERRORS: tuple[type[Exception], ...] = (pymysql.err.InterfaceError, MySQLdb.InterfaceError)
# Server-side codes after which the whole transaction is retried: deadlock, lock wait timeout.
_RETRY_CODES = {1213, 1205}
_DUPLICATE_KEY = 1062
_LOST_CONNECTION = 2013  # CR_SERVER_LOST: what a shard that stops answering mid-query is reported as


class Cursor(Protocol):
    """What callers use of a cursor, the same for a PyMySQL and a mysqlclient one."""

    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> Any: ...
    def execute(self, query: str, args: Any = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...
    def mogrify(self, query: str, args: Any = ...) -> str: ...
    def nextset(self) -> Any: ...


def error_code(exc: BaseException) -> int | None:
    """The MariaDB error number of a driver error (either driver), if it has one."""
    code = exc.args[0] if isinstance(exc, OPERATIONAL_ERRORS + INTEGRITY_ERRORS + _INTERFACE_ERRORS) and exc.args \
        else None
    return code if isinstance(code, int) else None


def is_retryable_conflict(exc: BaseException) -> bool:
    """A deadlock or lock wait timeout: the transaction was rolled back and may simply run again."""
    return isinstance(exc, OPERATIONAL_ERRORS) and error_code(exc) in _RETRY_CODES


def is_duplicate_key(exc: BaseException) -> bool:
    return isinstance(exc, INTEGRITY_ERRORS) and error_code(exc) == _DUPLICATE_KEY


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


def commit(conn: Connection | TimedConnection) -> None:
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
    connection stays in sync and the caller can roll back as after any failed statement. Every value
    is escaped by the driver (`mogrify`).

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
    if isinstance(exc, _INTERFACE_ERRORS):
        return True
    if isinstance(exc, OPERATIONAL_ERRORS):
        return error_code(exc) in _UNAVAILABLE_CODES
    return isinstance(exc, OSError | TimeoutError)


def session_arguments(shard: ShardConfig, shard_count: int, lock_nowait: bool = False,
                      lock_wait_s: int | None = None) -> dict[str, Any]:
    """What every connection to a shard shares, whichever driver opens it (both take these keyword
    names): where the shard listens, who logs in, utf8mb4, READ COMMITTED, and ids stamped with
    the shard (auto-increment offset = its index) so ids never collide across shards.

    `lock_nowait`: a row or metadata lock that is taken fails at once (error 1205) instead of
    waiting. MariaDB counts lock waits in whole seconds, and the ingest's answer bound is shorter
    (0.8 s): a wait would end as a read timeout, which is how a lost shard looks, and one hot row
    would open the whole shard's breaker. The ingest reruns the transaction a few times with a short
    backoff instead (PaymentService), then answers that one request 429. `lock_wait_s`: a bounded
    wait in whole seconds (the workers: their poll loop must not sit in one lock for 50 s)."""
    increment, offset = auto_increment_settings(shard.index, shard_count)
    where: dict[str, Any] = ({"unix_socket": str(shard.unix_socket)} if shard.unix_socket is not None
                             else {"host": shard.host, "port": shard.port})
    locks = (", innodb_lock_wait_timeout=0, lock_wait_timeout=0" if lock_nowait else
             f", innodb_lock_wait_timeout={int(lock_wait_s)}, lock_wait_timeout={int(lock_wait_s)}"
             if lock_wait_s is not None else "")
    return {**where, "user": shard.user, "password": shard.password(), "database": shard.database,
            "charset": "utf8mb4",
            "init_command": (f"SET SESSION auto_increment_increment={increment}, auto_increment_offset={offset}, "
                             f"tx_isolation='READ-COMMITTED'{locks}")}


def direct_connect(shard: ShardConfig, shard_count: int, settings: Settings, autocommit: bool = False,
                   timeout_s: float | None = None, lock_wait_s: int | None = None) -> Connection:
    """A plain PyMySQL connection in READ COMMITTED, ids stamped with its shard. It refuses
    multi-statements: only the ingest's pool (`timed_connect`) sends them."""
    read = timeout_s if timeout_s is not None else settings.db_read_timeout_s
    write = timeout_s if timeout_s is not None else settings.db_write_timeout_s
    return pymysql.connect(**session_arguments(shard, shard_count, lock_wait_s=lock_wait_s),
                           connect_timeout=min(settings.db_connect_timeout_s, read), read_timeout=read,
                           write_timeout=write, autocommit=autocommit)


class TimedConnection(MySQLdb.connections.Connection):
    """A mysqlclient connection whose statements wait for the shard's answer at most
    `answer_timeout_s` (a float): the statement is sent with `send_query`, the first byte of the
    answer awaited with poll() on the socket, then read by libmariadb. A shard that stops
    answering (hung, not stopped: the kernel still takes the bytes) raises OperationalError 2013,
    as a lost connection does; the pool then drops the connection.

    libmariadb's own read timeout counts whole seconds, so it is set to the bound rounded up and
    only backs up what poll() cannot see: a multi-statement's later results (read by
    `next_result`, possibly from libmariadb's buffer, where poll() would wait in vain) and an
    answer cut off halfway. COMMIT and ROLLBACK go through the same path, so "lost during COMMIT"
    keeps its meaning. `in_transaction` tells the pool whether a ROLLBACK is owed before reuse
    (mysqlclient does not expose the server's status flags)."""

    def __init__(self, *args: Any, answer_timeout_s: float, **kwargs: Any) -> None:
        self.answer_timeout_s = answer_timeout_s
        self.in_transaction = False
        super().__init__(*args, **kwargs)
        self._poller = select.poll()
        # mysqlclient's C methods are untyped in its stubs
        self._poller.register(self.fileno(), select.POLLIN | select.POLLPRI)  # type: ignore[no-untyped-call]

    def query(self, query: bytes | bytearray | str) -> None:
        sql = query.encode("utf-8") if isinstance(query, str) else bytes(query)
        self.in_transaction = sql not in (b"COMMIT", b"ROLLBACK", b"DO 1")
        self.send_query(sql)  # type: ignore[no-untyped-call]
        if not self._poller.poll(self.answer_timeout_s * 1000):
            raise MySQLdb.OperationalError(
                _LOST_CONNECTION, f"no answer from the shard within {self.answer_timeout_s} s")
        self.read_query_result()  # type: ignore[no-untyped-call]

    def commit(self) -> None:
        self.query(b"COMMIT")

    def rollback(self) -> None:
        self.query(b"ROLLBACK")

    def ping(self, *_args: Any) -> None:
        self.query(b"DO 1")


def timed_connect(shard: ShardConfig, shard_count: int, settings: Settings, timeout_s: float) -> TimedConnection:
    """A `TimedConnection` (READ COMMITTED, multi-statements, ids stamped with its shard) opened
    within `timeout_s`: libmariadb's connect timeout counts whole seconds, so the connect runs on a
    helper thread and the caller waits for it at most the bound (a late connection is closed)."""
    bound = min(settings.db_connect_timeout_s, timeout_s)
    whole_s = max(1, math.ceil(timeout_s))
    arguments = session_arguments(shard, shard_count, lock_nowait=True)
    outcome: list[TimedConnection | BaseException] = []
    abandoned = threading.Event()
    lock = threading.Lock()

    def open_it() -> None:
        try:
            result: TimedConnection | BaseException = TimedConnection(
                **arguments, answer_timeout_s=timeout_s, connect_timeout=max(1, math.ceil(bound)),
                read_timeout=whole_s, write_timeout=whole_s, autocommit=False,
                client_flag=MYSQLDB_CLIENT.MULTI_STATEMENTS)
        except BaseException as exc:  # handed to the caller
            result = exc
        with lock:
            if abandoned.is_set():
                if isinstance(result, TimedConnection):
                    _close_quietly(result)
                return
            outcome.append(result)

    opener = threading.Thread(target=open_it, name=f"connect-{shard.name}", daemon=True)
    opener.start()
    opener.join(bound)
    with lock:
        if not outcome:
            abandoned.set()
            raise MySQLdb.OperationalError(2003, f"could not connect to {shard.name} within {bound} s")
    got = outcome[0]
    if isinstance(got, BaseException):
        raise got
    return got


class _ShardPool:
    def __init__(self, shard: ShardConfig, shard_count: int, settings: Settings) -> None:
        self.shard = shard
        self.shard_count = shard_count
        self.settings = settings
        self.max_idle = settings.db_pool_size
        self._idle: collections.deque[tuple[TimedConnection, float]] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> TimedConnection:
        with self._lock:
            item = self._idle.pop() if self._idle else None
        if item is None:
            return self.open_connection()
        conn, since = item
        if time.monotonic() - since > _PING_AFTER_IDLE_S:
            started = time.monotonic()
            try:
                conn.ping()
            except Exception:
                _close_quietly(conn)
                self.close_all()
                if time.monotonic() - started > self.settings.ingest_db_timeout_s / 2:
                    raise  # it timed out: the shard hangs; spend no second timeout on a reconnect
                # refused at once: a restarted shard; its idle siblings are as stale, start afresh
                return self.open_connection()
        return conn

    def open_connection(self) -> TimedConnection:
        return timed_connect(self.shard, self.shard_count, self.settings, self.settings.ingest_db_timeout_s)

    def give_back(self, conn: TimedConnection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((conn, time.monotonic()))
                return
        _close_quietly(conn)

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
    def connect(self, index: int) -> Iterator[TimedConnection]:
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
                self._lost(index, conn)
                raise ShardUnavailable(shard, exc, outcome_unknown=isinstance(exc, CommitInterrupted)) from exc
            self._release(index, conn, rollback=True)  # the request failed for its own reasons
            raise
        except BaseException:
            _close_quietly(conn)
            raise
        self._release(index, conn, rollback=conn.in_transaction)

    def _release(self, index: int, conn: TimedConnection, rollback: bool) -> None:
        """The block is over: roll back what it left open, then pool the connection again. If the
        shard is lost at that ROLLBACK, the open transaction dies with the connection (a server
        rolls back a connection it loses), which is all the ROLLBACK was for: the block's own
        outcome stands (its answer, or its error), and the loss is recorded like any other."""
        if rollback:
            try:
                conn.rollback()
            except Exception as exc:
                if is_unavailable_error(exc):
                    self._lost(index, conn)
                    return
                _close_quietly(conn)  # the shard answered, with an error: do not pool this one
                self.breakers[index].success()
                return
        self.breakers[index].success()
        self._pools[index].give_back(conn)

    def _lost(self, index: int, conn: TimedConnection) -> None:
        """Shard `index` stopped answering on `conn`: open its breaker (a watcher probes it), drop the
        connection and its idle siblings (as stale after a restart: the breaker's trial then uses
        a fresh connection instead of failing again)."""
        self.breakers[index].failure()
        self._watch(index)
        _close_quietly(conn)
        self._pools[index].close_all()

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
        conn: TimedConnection | None = None
        try:
            conn = pool.open_connection()
            conn.ping()
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


def _close_quietly(conn: Connection | TimedConnection) -> None:
    try:
        conn.close()
    except Exception:
        pass
