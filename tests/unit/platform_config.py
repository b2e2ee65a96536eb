"""A two-shard PlatformConfig for unit tests that need one but talk to no shard (the one home for it)."""

from __future__ import annotations

from pathlib import Path

from payflow.config import PlatformConfig, Settings, ShardConfig


def two_shard_config(tmp_path: Path, settings: Settings | None = None) -> PlatformConfig:
    shards = [ShardConfig(index=i, name=f"shard{i + 1}", host=f"10.0.0.{i + 1}", port=3306, database="payments",
                          user="payflow", password_file=tmp_path / f"vm{i + 1}.password") for i in range(2)]
    return PlatformConfig(vm="vm1", shard_index=0, shards=shards, bootstrap_servers="k:9092", ingest_port=1,
                          relay_port=2, ledger_port=3, refund_port=4, settlement_port=5,
                          settings=settings or Settings())
