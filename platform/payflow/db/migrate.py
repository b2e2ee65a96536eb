"""`python -m payflow.db.migrate`: apply the pending migrations on every shard of $PAYFLOW_CONFIG.

The compose stack's one-shot `schema` job (its services start only once it exited 0); the local
backend applies the same migrations through `payctl schema apply`. Prints one line per shard."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pymysql

from payflow.config import PlatformConfig, ShardConfig, load_config
from payflow.db import migrations
from payflow.db.pool import direct_connect

Connect = Callable[[ShardConfig], Any]

# DDL on a fresh shard takes a moment; the admin connection waits longer than a request would.
DDL_TIMEOUT_S = 60.0


def apply_all(config: PlatformConfig, connect: Connect | None = None, attempts: int = 10,
              retry_s: float = 1.0) -> dict[str, list[str]]:
    """{shard name: [migration labels applied]} over every shard of `config`; a shard that refuses
    connections is tried `attempts` times (it may have only just started)."""
    def default_connect(shard: ShardConfig) -> Any:
        return direct_connect(shard, config.shard_count, config.settings, timeout_s=DDL_TIMEOUT_S)

    connect = connect or default_connect
    applied: dict[str, list[str]] = {}
    for shard in config.shards:
        conn = _connect_with_retries(connect, shard, attempts, retry_s)
        try:
            applied[shard.name] = [m.label for m in migrations.apply_pending(conn)]
        finally:
            conn.close()
    return applied


def _connect_with_retries(connect: Connect, shard: ShardConfig, attempts: int, retry_s: float) -> Any:
    for attempt in range(1, attempts + 1):
        try:
            return connect(shard)
        except (pymysql.err.OperationalError, OSError):
            if attempt == attempts:
                raise
            time.sleep(retry_s)
    raise AssertionError("unreachable")


def main() -> int:
    config = load_config()
    try:
        applied = apply_all(config)
    except (pymysql.err.MySQLError, OSError, RuntimeError) as exc:
        print(f"schema: {exc}", file=sys.stderr)
        return 1
    for shard, labels in applied.items():
        print(f"{shard}: {', '.join(labels) if labels else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
