"""`python -m payflow.db.migrate`, the compose stack's schema job, against fake shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymysql
import pytest

from payflow.config import PlatformConfig, ShardConfig
from payflow.db import migrate, migrations
from tests.unit.platform_config import two_shard_config


class FakeConn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def config(tmp_path: Path) -> PlatformConfig:
    return two_shard_config(tmp_path)


def test_every_shard_gets_its_pending_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    conns: list[FakeConn] = []
    pending = {"shard1": [migrations.Migration(1, "init", "")], "shard2": []}
    monkeypatch.setattr(migrations, "apply_pending", lambda conn: pending[conn.name])

    def connect(shard: ShardConfig) -> Any:
        conns.append(FakeConn(shard.name))
        return conns[-1]

    assert migrate.apply_all(config(tmp_path), connect=connect) == {"shard1": ["V001__init"], "shard2": []}
    assert [c.name for c in conns] == ["shard1", "shard2"] and all(c.closed for c in conns)


def test_a_shard_that_is_still_starting_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(migrations, "apply_pending", lambda conn: [])
    refusals = {"shard1": 2}

    def connect(shard: ShardConfig) -> Any:
        if refusals.get(shard.name, 0):
            refusals[shard.name] -= 1
            raise pymysql.err.OperationalError(2003, "connection refused")
        return FakeConn(shard.name)

    assert migrate.apply_all(config(tmp_path), connect=connect, retry_s=0) == {"shard1": [], "shard2": []}

    def refused(shard: ShardConfig) -> Any:
        raise pymysql.err.OperationalError(2003, "connection refused")

    with pytest.raises(pymysql.err.OperationalError):
        migrate.apply_all(config(tmp_path), connect=refused, attempts=2, retry_s=0)


def test_main_prints_one_line_per_shard_and_exits_1_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "payflow.json"
    path.write_text(config(tmp_path).model_dump_json())
    monkeypatch.setenv("PAYFLOW_CONFIG", str(path))
    monkeypatch.setattr(migrate, "apply_all", lambda cfg: {"shard1": ["V001__init", "V002__x"], "shard2": []})
    assert migrate.main() == 0
    assert capsys.readouterr().out == "shard1: V001__init, V002__x\nshard2: up to date\n"

    def broken(cfg: PlatformConfig) -> dict[str, list[str]]:
        raise RuntimeError("applied migrations changed on disk: [1]")

    monkeypatch.setattr(migrate, "apply_all", broken)
    assert migrate.main() == 1
    assert "changed on disk" in capsys.readouterr().err
