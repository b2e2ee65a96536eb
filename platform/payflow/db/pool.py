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

from payflow.config import Settings, ShardConfig
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
    engine = create_engine(
        shard_url(shard),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        pool_timeout=5,
        isolation_level="READ COMMITTED",
        # Every code path ends its transaction (Connection.close() rolls back an open one), so the
        # pool's extra ROLLBACK round trip on return buys nothing.
        pool_reset_on_return=None,
        connect_args={
            "password": shard.password(),
            "connect_timeout": max(1, round(settings.db_connect_timeout_s)),
            "read_timeout": settings.db_read_timeout_s,
            "write_timeout": settings.db_write_timeout_s,
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

    def __len__(self) -> int:
        return len(self.shards)

    @contextmanager
    def connect(self, index: int) -> Iterator[Connection]:
        """A pooled connection to shard `index`; server-gone errors become ShardUnavailable."""
        shard = self.shards[index]
        try:
            with self._engines[index].connect() as conn:
                yield conn
        except DBAPIError as exc:
            if is_unavailable_error(exc):
                raise ShardUnavailable(shard, exc.orig or exc) from exc
            raise

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
        connect_timeout=max(1, round(settings.db_connect_timeout_s)),
        read_timeout=settings.db_read_timeout_s,
        write_timeout=settings.db_write_timeout_s,
        autocommit=autocommit,
        charset="utf8mb4",
    )
    with conn.cursor() as cur:
        cur.execute(f"SET SESSION auto_increment_increment={increment}, auto_increment_offset={offset}")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn
