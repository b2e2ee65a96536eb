"""A consumer's connections to the shards, opened on first use: per shard one for the applying
transaction ("apply") and one for work outside it ("side": a handler's preparation, parking,
progress). A shard whose connection failed is dropped and reconnected on next use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pymysql

from payflow.config import PlatformConfig
from payflow.db.pool import direct_connect

Role = Literal["apply", "side"]
# A lock wait ends after this long (MariaDB's default is 50 s); the apply then reruns a bounded
# number of times (payflow.consumers.apply.LOCK_RETRIES) and parks the event.
CONSUMER_LOCK_WAIT_S = 2


class ShardConnections:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self._conns: dict[tuple[int, Role], pymysql.Connection[Any]] = {}

    def get(self, shard: int, role: Role = "apply") -> pymysql.Connection[Any]:
        conn = self._conns.get((shard, role))
        if conn is None:
            conn = direct_connect(self.config.shards[shard], self.config.shard_count, self.config.settings,
                                  lock_wait_s=CONSUMER_LOCK_WAIT_S)
            self._conns[(shard, role)] = conn
        return conn

    def drop(self, shard: int) -> None:
        """Close both of the shard's connections (quietly: it may be gone already)."""
        for role in ("apply", "side"):
            conn = self._conns.pop((shard, role), None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass


class SharedConnections:
    """Per shard, at most `size` connections lent to many threads for a few statements at a time
    (the refund stage's lanes: each call to the acquirer borrows one for its statements, never
    while it waits for the answer, so many calls in flight need only a few connections). A
    connection that failed while lent is closed, not given back."""

    def __init__(self, config: PlatformConfig, size: int) -> None:
        self.config = config
        self.size = size
        self._cond = threading.Condition()
        self._idle: dict[int, list[pymysql.Connection[Any]]] = {}
        self._open: dict[int, int] = {}

    @contextmanager
    def borrow(self, shard: int) -> Iterator[pymysql.Connection[Any]]:
        conn = self.take(shard)
        try:
            yield conn
        except BaseException:
            self.discard(shard, conn)
            raise
        self.give(shard, conn)

    def take(self, shard: int) -> pymysql.Connection[Any]:
        """A connection of the shard's, idle or new, for as long as the caller needs it (`give` it
        back, or `discard` it when it failed); waits while `size` are lent."""
        with self._cond:
            while True:
                idle = self._idle.get(shard)
                if idle:
                    return idle.pop()
                if self._open.get(shard, 0) < self.size:
                    self._open[shard] = self._open.get(shard, 0) + 1
                    break
                self._cond.wait()
        try:
            return direct_connect(self.config.shards[shard], self.config.shard_count, self.config.settings,
                                  lock_wait_s=CONSUMER_LOCK_WAIT_S)
        except BaseException:
            with self._cond:
                self._open[shard] -= 1
                self._cond.notify()
            raise

    def give(self, shard: int, conn: pymysql.Connection[Any]) -> None:
        with self._cond:
            self._idle.setdefault(shard, []).append(conn)
            self._cond.notify()

    def discard(self, shard: int, conn: pymysql.Connection[Any]) -> None:
        try:
            conn.close()
        except Exception:
            pass
        with self._cond:
            self._open[shard] -= 1
            self._cond.notify()
