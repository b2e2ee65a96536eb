"""The platform's tables, one module per table: the only code that writes SQL on them.

payments (payment), refunds (refund_request), idempotency (idempotency_record), outbox
(outbox_event), inbox (processed_event), parking (parked_message), progress (consumer_progress),
acquirer (acquirer_refund), settlement, ledger (ledger_entry). `queries` holds the read-only reads
that span tables (reconcile, the chaos probes, payctl's questions); `retention` prunes. Services
(ingest, consumers, outbox relay) and payctl call these functions; the transaction stays the
caller's."""
