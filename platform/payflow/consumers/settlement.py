"""settlement-vmN: folds captured and refunded amounts into a per-merchant daily settlement."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pymysql

from payflow.consumers.base import Event, worker_main
from payflow.domain import events
from payflow.store import settlement


class SettlementHandler:
    name = "settlement"
    event_types = events.SETTLEMENT_EVENTS

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        return {}

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        self.apply_many(cur, [event])

    def apply_many(self, cur: pymysql.cursors.Cursor, events_: list[Event]) -> None:
        # Folded per merchant-day first: one upsert row per key, in key order (no lock-order deadlocks).
        folded: dict[tuple[str, date, str], tuple[int, int]] = {}
        for event in events_:
            p = event.payload
            day = datetime.fromtimestamp(event.created_at or datetime.now(UTC).timestamp(), UTC).date()
            effect = events.settlement_effect(event.event_type, p)
            key = (str(p["merchantId"]), day, str(p["currency"]))
            g, r = folded.get(key, (0, 0))
            folded[key] = (g + effect.gross, r + effect.refunded)
        settlement.add(cur, [(m, d, c, g, r) for (m, d, c), (g, r) in sorted(folded.items())])


def main() -> None:
    worker_main("settlement", lambda c: SettlementHandler(), lambda c: c.settlement_port)


if __name__ == "__main__":
    main()
