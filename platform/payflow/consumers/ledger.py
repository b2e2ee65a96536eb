"""ledger-vmN: balanced double-entry postings for every money-moving payment event."""

from __future__ import annotations

from typing import Any

import pymysql
from prometheus_client import Counter

from payflow.consumers.base import Event, worker_main
from payflow.domain.events import LEDGER_EVENTS, is_balanced, postings_for
from payflow.store import ledger

ENTRIES = Counter("ledger_entries", "ledger postings written", ["application"])


class LedgerHandler:
    name = "ledger"
    event_types = LEDGER_EVENTS

    def __init__(self) -> None:
        ENTRIES.labels(self.name)

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        return {}

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        self.apply_many(cur, [event])

    def apply_many(self, cur: pymysql.cursors.Cursor, events: list[Event]) -> None:
        rows: list[ledger.Posting] = []
        for event in events:
            postings = postings_for(event.event_type, event.payload)
            if not is_balanced(postings):
                raise ValueError(f"unbalanced postings for event {event.event_id}")
            p = event.payload
            rows += [(event.event_id, event.payment_id, p["merchantId"], x.account, x.direction, x.amount,
                      p["currency"]) for x in postings]
        if rows:
            ledger.insert_many(cur, rows)
            ENTRIES.labels("ledger").inc(len(rows))


def main() -> None:
    worker_main("ledger", lambda c: LedgerHandler(), lambda c: c.ledger_port)


if __name__ == "__main__":
    main()
