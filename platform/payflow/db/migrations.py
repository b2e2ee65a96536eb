"""Versioned migrations: discovery and planning (pure) plus applying them to one shard."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pymysql

_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")

CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        """As its file is named, without .sql: V001__init."""
        return f"V{self.version:03d}__{self.name}"

    def statements(self) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in body.split(";") if s.strip()]


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("payflow.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions: {versions}")
    return found


@dataclass(frozen=True)
class MigrationPlan:
    pending: list[Migration]
    modified: list[int]  # applied versions whose file changed since (checksum mismatch)
    unknown: list[int]  # applied versions with no file


def plan(available: list[Migration], applied: list[AppliedMigration]) -> MigrationPlan:
    by_version = {a.version: a for a in applied}
    files = {m.version: m for m in available}
    pending = [m for m in available if m.version not in by_version]
    modified = [v for v, a in by_version.items() if v in files and files[v].checksum != a.checksum]
    unknown = [v for v in by_version if v not in files]
    return MigrationPlan(pending, sorted(modified), sorted(unknown))


def read_applied(conn: pymysql.connections.Connection[Any]) -> list[AppliedMigration]:
    with conn.cursor() as cur:
        cur.execute(CREATE_TRACKING)
        cur.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        return [AppliedMigration(int(v), str(n), str(c)) for v, n, c in cur.fetchall()]


def apply_pending(conn: pymysql.connections.Connection[Any]) -> list[Migration]:
    """Apply what is missing; refuse to run when an applied migration's file changed."""
    migration_plan = plan(load_migrations(), read_applied(conn))
    if migration_plan.modified:
        raise RuntimeError(
            f"applied migrations changed on disk: {migration_plan.modified}; add a new migration instead"
        )
    with conn.cursor() as cur:
        for migration in migration_plan.pending:
            # MariaDB DDL commits implicitly; each migration is recorded right after it runs.
            for statement in migration.statements():
                cur.execute(statement)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            conn.commit()
    return migration_plan.pending


def schema_fingerprint(conn: pymysql.connections.Connection[Any], database: str) -> dict[str, str]:
    """Table name → hash of its column/index definition, for drift detection between shards."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, column_type, is_nullable, COALESCE(column_default,''), "
            "column_key FROM information_schema.columns WHERE table_schema=%s "
            "ORDER BY table_name, ordinal_position",
            (database,),
        )
        cols = cur.fetchall()
        cur.execute(
            "SELECT table_name, index_name, non_unique, column_name, seq_in_index FROM "
            "information_schema.statistics WHERE table_schema=%s ORDER BY table_name, index_name, seq_in_index",
            (database,),
        )
        idx = cur.fetchall()
    tables: dict[str, list[str]] = {}
    for row in cols:
        tables.setdefault(str(row[0]), []).append("col:" + "|".join(map(str, row[1:])))
    for row in idx:
        tables.setdefault(str(row[0]), []).append("idx:" + "|".join(map(str, row[1:])))
    return {t: hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16] for t, parts in tables.items()}
