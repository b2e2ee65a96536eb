-- Payments, idempotency records and the transactional outbox.
CREATE TABLE payment (
  payment_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  merchant_id VARCHAR(32) NOT NULL,
  amount BIGINT NOT NULL,
  captured_amount BIGINT NOT NULL DEFAULT 0,
  refunded_amount BIGINT NOT NULL DEFAULT 0,
  refund_pending_amount BIGINT NOT NULL DEFAULT 0,
  currency CHAR(3) NOT NULL,
  status VARCHAR(20) NOT NULL,
  idempotency_key VARCHAR(64) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_payment_merchant_idem (merchant_id, idempotency_key),
  KEY ix_payment_merchant (merchant_id, created_at)
) ENGINE=InnoDB;

CREATE TABLE idempotency_record (
  merchant_id VARCHAR(32) NOT NULL,
  idem_key VARCHAR(64) NOT NULL,
  operation VARCHAR(40) NOT NULL,
  request_hash CHAR(64) NOT NULL,
  http_status SMALLINT NULL,
  response_body MEDIUMTEXT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (merchant_id, idem_key)
) ENGINE=InnoDB;

CREATE TABLE outbox_event (
  event_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  aggregate_type VARCHAR(40) NOT NULL,
  aggregate_id BIGINT NOT NULL,
  event_type VARCHAR(60) NOT NULL,
  payload JSON NOT NULL,
  published TINYINT NOT NULL DEFAULT 0,
  published_at DATETIME(6) NULL,
  retry_count INT NOT NULL DEFAULT 0,
  last_retry_at DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  next_attempt_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  dead TINYINT NOT NULL DEFAULT 0,
  last_error VARCHAR(500) NULL,
  redrive_count INT NOT NULL DEFAULT 0,
  KEY ix_pub_created (published, created_at),
  KEY ix_pending (published, dead, next_attempt_at, event_id)
) ENGINE=InnoDB;

-- Consumers' inbox: one row per (consumer, event) makes redelivery harmless.
CREATE TABLE processed_event (
  consumer VARCHAR(40) NOT NULL,
  event_id BIGINT NOT NULL,
  processed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (consumer, event_id)
) ENGINE=InnoDB;

CREATE TABLE ledger_entry (
  entry_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id BIGINT NOT NULL,
  payment_id BIGINT NOT NULL,
  merchant_id VARCHAR(32) NOT NULL,
  account VARCHAR(60) NOT NULL,
  direction ENUM('DEBIT','CREDIT') NOT NULL,
  amount BIGINT NOT NULL,
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_ledger_payment (payment_id),
  KEY ix_ledger_event (event_id)
) ENGINE=InnoDB;

CREATE TABLE refund_request (
  refund_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  payment_id BIGINT NOT NULL,
  merchant_id VARCHAR(32) NOT NULL,
  amount BIGINT NOT NULL,
  reason VARCHAR(200) NULL,
  status VARCHAR(20) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY ix_refund_payment (payment_id)
) ENGINE=InnoDB;

CREATE TABLE settlement (
  merchant_id VARCHAR(32) NOT NULL,
  settlement_date DATE NOT NULL,
  currency CHAR(3) NOT NULL,
  gross_captured BIGINT NOT NULL DEFAULT 0,
  refunded BIGINT NOT NULL DEFAULT 0,
  net BIGINT NOT NULL DEFAULT 0,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (merchant_id, settlement_date, currency)
) ENGINE=InnoDB;
