-- Identity is byte-exact (DESIGN.md §2): merchant ids and idempotency keys compare with a binary
-- collation, so `merchant-50` is not `MERCHANT-50`. MODIFY keeps every existing row.
ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE payment
  MODIFY merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY idempotency_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  -- keys expire (idempotency_ttl_s), so a later payment may reuse one: idempotency_record's
  -- primary key is what makes concurrent duplicates produce exactly one payment
  DROP INDEX uq_payment_merchant_idem,
  ADD KEY ix_payment_merchant_idem (merchant_id, idempotency_key);
ALTER TABLE idempotency_record
  MODIFY merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY idem_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  ADD KEY ix_idem_created (created_at);
ALTER TABLE ledger_entry
  MODIFY merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE refund_request
  MODIFY merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  ADD COLUMN acquirer_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
ALTER TABLE settlement
  MODIFY merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- Retention, reconcile --since and stats read by index, never by a whole-table scan.
ALTER TABLE outbox_event ADD KEY ix_created (created_at), ADD KEY ix_dead (dead);
ALTER TABLE payment ADD KEY ix_payment_created (created_at);
ALTER TABLE settlement ADD KEY ix_settlement_date (settlement_date);
ALTER TABLE processed_event ADD KEY ix_processed_at (processed_at);

-- Messages a consumer could not apply (poison, forged, altered): kept for an operator, then skipped.
CREATE TABLE parked_message (
  park_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  consumer VARCHAR(40) NOT NULL,
  topic VARCHAR(120) NOT NULL,
  kafka_partition INT NOT NULL,
  kafka_offset BIGINT NOT NULL,
  event_id BIGINT NULL,
  reason VARCHAR(500) NOT NULL,
  attempts INT NOT NULL,
  raw_value MEDIUMBLOB NULL,
  parked_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_parked_position (consumer, topic, kafka_partition, kafka_offset),
  KEY ix_parked_event (event_id)
) ENGINE=InnoDB;

-- The simulated acquirer's own record of refunds it executed, by its idempotency key: what lets
-- the refund worker ask "did you already do this one?" after a crash. `requests` counts how often
-- it was asked for a key; it executes each key once.
CREATE TABLE acquirer_refund (
  acquirer_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  amount BIGINT NOT NULL,
  succeeded TINYINT NOT NULL,
  requests INT NOT NULL DEFAULT 1,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB
;

-- How far each consumer group member has read, as a time: every event published before
-- caught_up_to was handled (applied, parked or deferred). Re-drive only touches events older than
-- what every live member has read, so a lagging consumer is never mistaken for a lost event.
CREATE TABLE consumer_progress (
  consumer VARCHAR(40) NOT NULL,
  member VARCHAR(60) NOT NULL,
  caught_up_to DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (consumer, member)
) ENGINE=InnoDB
