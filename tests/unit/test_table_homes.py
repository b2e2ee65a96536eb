"""One home per table: SQL naming a platform table (any table a migration creates) appears only in
`payflow.store` and the migrations, never in a service or in payctl."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform" / "payflow"
SCANNED = (ROOT / "payctl", PLATFORM)
# The store owns the tables; migrations create them; the migrations API owns schema_migrations.
HOMES = (PLATFORM / "store", PLATFORM / "migrations", PLATFORM / "db" / "migrations.py",
         PLATFORM / "db" / "migrate.py")

_CREATE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?", re.IGNORECASE)


def platform_tables() -> set[str]:
    """Every table the migrations create, read from their CREATE TABLE statements."""
    return {m.group(1) for sql in sorted((PLATFORM / "migrations").glob("*.sql"))
            for m in _CREATE.finditer(sql.read_text())}


def sql_pattern(tables: set[str]) -> re.Pattern[str]:
    """A SQL keyword that names a table, then one of `tables`. The keywords are matched upper case,
    as every statement here writes them, so prose ("rows from payment") is not SQL."""
    names = "|".join(sorted(map(re.escape, tables)))
    return re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+`?(?:{names})\b`?")


def _is_home(path: Path) -> bool:
    return any(path == home or home in path.parents for home in HOMES)


def stray_sql() -> list[str]:
    pattern = sql_pattern(platform_tables())
    hits = []
    for root in SCANNED:
        for path in sorted(root.rglob("*.py")):
            if _is_home(path):
                continue
            text = path.read_text()
            for match in pattern.finditer(text):  # the whole file: a statement may break its line
                number = text.count("\n", 0, match.start()) + 1
                hits.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    return hits


def test_the_migrations_create_the_tables_the_design_names():
    assert {"payment", "idempotency_record", "outbox_event", "processed_event", "ledger_entry",
            "refund_request", "settlement", "parked_message", "acquirer_refund",
            "consumer_progress"} <= platform_tables()


def test_the_pattern_finds_sql_and_ignores_prose():
    pattern = sql_pattern({"payment", "outbox_event"})
    for sql in ('"SELECT a FROM payment WHERE x"', '"INSERT IGNORE INTO outbox_event (a)"',
                '"UPDATE `payment` SET status=%s"', '"x JOIN payment p ON"', '"ALTER TABLE payment"',
                'f"DELETE FROM outbox_event WHERE"'):
        assert pattern.search(sql), sql
    for prose in ("rows from payment are read", "the payment table", "UPDATE payments_view SET",
                  "FROM payment_id", "into outbox_event"):
        assert not pattern.search(prose), prose


def test_sql_on_platform_tables_lives_only_in_the_store():
    hits = stray_sql()
    assert not hits, "SQL on a platform table outside payflow.store (move it to its table's store module):\n" + \
        "\n".join(hits)
