"""The history checker's read of the books scales with the run: every event of the run's merchants is
read once and its inbox and parked rows are looked up by key (no scan of the inbox per block of
events), on tables the size of a long experiment's."""

from __future__ import annotations

import time

import pymysql
import pytest

from payflow.store.queries import client_run_money, run_events_statement
from tests.integration.conftest import table_copies

pytestmark = pytest.mark.integration

COPY = "payctl_history_reads"
TABLES = ("outbox_event", "processed_event", "parked_message", "ledger_entry", "settlement")
EVENTS = 6000  # 3,000 payments × (authorized, captured), 20 merchants


def _rows_read(cur) -> int:
    cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_next', 'Handler_read_prev', "
                "'Handler_read_key', 'Handler_read_first', 'Handler_read_last', 'Handler_read_rnd_next')")
    return sum(int(value) for _, value in cur.fetchall())


def _fill(cur) -> None:
    cur.execute(f"INSERT INTO {COPY}.outbox_event (aggregate_type, aggregate_id, event_type, payload, published) "
                f"SELECT 'payment', seq, IF(seq % 4 < 2, 'PaymentAuthorized', 'PaymentCaptured'), "
                f"JSON_OBJECT('merchantId', CONCAT('MERCHANT-', seq % 20), 'paymentId', seq), 1 "
                f"FROM {COPY}.seq_1_to_{EVENTS}")
    # every event applied by the ledger, the captures by settlement too; the refund worker takes none
    cur.execute(f"INSERT INTO {COPY}.processed_event (consumer, event_id) SELECT 'ledger', event_id "
                f"FROM {COPY}.outbox_event")
    cur.execute(f"INSERT INTO {COPY}.processed_event (consumer, event_id) SELECT 'settlement', event_id "
                f"FROM {COPY}.outbox_event WHERE event_type = 'PaymentCaptured'")
    # many parked rows not yet replayed (a poison run before), one of them of a run's event
    cur.execute(f"INSERT INTO {COPY}.parked_message (consumer, topic, kafka_partition, kafka_offset, event_id, "
                f"kind, reason, attempts) SELECT 'ledger', 't', 0, seq, NULL, 'undecodable', 'r', 1 "
                f"FROM {COPY}.seq_1_to_3000")
    cur.execute(f"INSERT INTO {COPY}.parked_message (consumer, topic, kafka_partition, kafka_offset, event_id, "
                f"kind, reason, attempts) SELECT 'refund', 't', 0, 1, event_id, 'poison', 'r', 3 "
                f"FROM {COPY}.outbox_event WHERE aggregate_id = 2")  # MERCHANT-2's capture (2 % 4 = 2)
    cur.execute(f"ANALYZE TABLE {', '.join(f'{COPY}.{t}' for t in TABLES)}")


def test_the_run_events_read_probes_the_inbox_by_key_and_reads_about_a_row_per_event(stack):
    merchants = [f"MERCHANT-{i}" for i in range(0, 20, 2)]  # half of them: 3,000 events
    with table_copies(stack, COPY, TABLES) as admin:
        with admin.cursor() as cur:
            _fill(cur)
        conn = pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", database=COPY)
        try:
            with conn.cursor() as cur:
                sql, args = run_events_statement(merchants, time.time() - 3600)
                cur.execute("EXPLAIN " + sql, args)
                plan = [dict(zip([d[0] for d in cur.description], row, strict=True)) for row in cur.fetchall()]
                for step in plan:
                    assert "join buffer" not in str(step["Extra"] or ""), plan
                inbox = [s for s in plan if str(s["table"]).startswith("p")]
                assert len(inbox) == 3 and all(s["type"] == "eq_ref" for s in inbox), plan
                (parked,) = [s for s in plan if s["table"] == "k"]
                assert parked["key"] == "ix_parked_event", plan
                before = _rows_read(cur)
                money = client_run_money(cur, merchants, [], time.time() - 3600)
                read = _rows_read(cur) - before
        finally:
            conn.close()
    assert len(money.events) == EVENTS // 2
    # the events' own scan (all 6,000 rows since the time) plus a probe per event and consumer
    assert read <= 6 * EVENTS, read
    by_type = {e.event_type: e for e in money.events}
    assert by_type["PaymentAuthorized"].applied_by == frozenset({"ledger"})
    assert by_type["PaymentCaptured"].applied_by == frozenset({"ledger", "settlement"})
    parked = [e for e in money.events if e.parked_by]
    assert [(e.payment_id, e.parked_by) for e in parked] == [(2, frozenset({"refund"}))]
