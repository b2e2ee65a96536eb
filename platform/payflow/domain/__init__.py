"""Pure business rules: sharding, ids, the payment state machine, ledger postings."""
