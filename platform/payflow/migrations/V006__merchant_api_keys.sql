-- Merchants' API keys (DESIGN §3), on the merchant's shard: only a SHA-256 of each key is kept
-- (payflow.domain.api_keys). A rotation gives the replaced keys an expiry (the grace period); a
-- revocation ends a key at once. The ingest reads a merchant's usable keys by ix_key_merchant.
CREATE TABLE merchant_api_key (
  key_id CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  merchant_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  secret_hash BINARY(32) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  expires_at DATETIME(6) NULL,
  revoked_at DATETIME(6) NULL,
  KEY ix_key_merchant (merchant_id, revoked_at)
) ENGINE=InnoDB;
