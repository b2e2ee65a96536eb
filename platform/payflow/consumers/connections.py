"""A consumer's connections to the shards, opened on first use: per shard one for the applying
transaction ("apply") and one for work outside it ("side": a handler's preparation, parking,
progress). A shard whose connection failed is dropped and reconnected on next use."""

from __future__ import annotations

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
