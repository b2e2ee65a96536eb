"""The one connection layer of every platform process: a SQLAlchemy pool per shard for the ingest,
plain PyMySQL connections for the relay and the workers. Every connection has connect, read and
write timeouts from the settings and stamps the ids it makes with its shard (DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from payflow.config import Settings, ShardConfig
from payflow.db.shard_breaker import ShardBreaker
from payflow.domain.sharding import auto_increment_settings

# Client-side codes that mean "the server is not there" rather than "the query was wrong".
_UNAVAILABLE_CODES = {2003, 2006, 2013, 2002, 1053, 1927, 2055}


class ShardUnavailable(Exception):
    def __init__(self, shard: ShardConfig, cause: BaseException) -> None:
        super().__init__(f"shard {shard.name} ({shard.host}:{shard.port}) is unavailable: {cause}")
        self.shard = shard


def is_unavailable_error(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        code = orig.args[0] if orig.args else None
        return code in _UNAVAILABLE_CODES or isinstance(orig, pymysql.err.InterfaceError)
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def shard_url(shard: ShardConfig) -> str:
    return f"mysql+pymysql://{shard.user}@{shard.host}:{shard.port}/{shard.database}?charset=utf8mb4"


def make_engine(shard: ShardConfig, shard_count: int, settings: Settings) -> Engine:
    """The ingest's pool: short timeouts everywhere, so a hung shard costs < 1 s, not a thread."""
    timeout = settings.ingest_db_timeout_s
    engine = create_engine(
        shard_url(shard),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        pool_timeout=timeout,
        isolation_level="READ COMMITTED",
        # Every code path ends its transaction (Connection.close() rolls back an open one), so the
        # pool's extra ROLLBACK round trip on return buys nothing.
        pool_reset_on_return=None,
        connect_args={
            "password": shard.password(),
            "connect_timeout": min(settings.db_connect_timeout_s, timeout),
            "read_timeout": timeout,
            "write_timeout": timeout,
        },
    )
    increment, offset = auto_increment_settings(shard.index, shard_count)

    @event.listens_for(engine, "connect")
    def _stamp_ids(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(
                f"SET SESSION auto_increment_increment={increment}, auto_increment_offset={offset}"
            )

    return engine


class ShardPools:
    def __init__(self, shards: list[ShardConfig], settings: Settings) -> None:
        self.shards = shards
        self._engines = [make_engine(s, len(shards), settings) for s in shards]
        self.breakers = [ShardBreaker(settings.shard_open_s) for _ in shards]

    def __len__(self) -> int:
        return len(self.shards)

    @contextmanager
    def connect(self, index: int) -> Iterator[Connection]:
        """A pooled connection to shard `index`, behind its breaker: server-gone errors and timeouts
        become ShardUnavailable and open the breaker; while it is open the call fails at once."""
        shard = self.shards[index]
        breaker = self.breakers[index]
        if not breaker.allow():
            raise ShardUnavailable(shard, RuntimeError("breaker open after recent failures"))
        try:
            with self._engines[index].connect() as conn:
                yield conn
        except DBAPIError as exc:
            if is_unavailable_error(exc):
                breaker.failure()
                raise ShardUnavailable(shard, exc.orig or exc) from exc
            breaker.success()
            raise
        except SATimeoutError as exc:  # no pooled connection freed up in time: the shard is stuck
            breaker.failure()
            raise ShardUnavailable(shard, exc) from exc
        except BaseException:
            breaker.success()  # the shard answered; the request failed for its own reasons
            raise
        breaker.success()

    def ready(self) -> dict[str, bool]:
        """Per-shard readiness from the breakers, without touching a shard (so /health never hangs)."""
        return {shard.name: breaker.state == "closed" for shard, breaker in zip(self.shards, self.breakers,
                                                                                 strict=True)}

    def dispose(self) -> None:
        for engine in self._engines:
            engine.dispose()


def direct_connect(shard: ShardConfig, shard_count: int, settings: Settings,
                   autocommit: bool = False) -> pymysql.Connection[Any]:
    """A plain PyMySQL connection (for workers that manage their own transactions)."""
    increment, offset = auto_increment_settings(shard.index, shard_count)
    conn = pymysql.connect(
        host=shard.host,
        port=shard.port,
        user=shard.user,
        password=shard.password(),
        database=shard.database,
        connect_timeout=settings.db_connect_timeout_s,
        read_timeout=settings.db_read_timeout_s,
        write_timeout=settings.db_write_timeout_s,
        autocommit=autocommit,
        charset="utf8mb4",
    )
    with conn.cursor() as cur:
        cur.execute(f"SET SESSION auto_increment_increment={increment}, auto_increment_offset={offset}")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn
