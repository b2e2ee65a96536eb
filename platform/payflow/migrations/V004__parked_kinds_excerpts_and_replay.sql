-- Parked messages: a closed kind (what metrics label and what makes a row an authentic event that
-- is terminal until replayed), an excerpt of the bytes with the digest and length of the whole
-- (a forged message may be as large as the broker allows), when a person replayed it, and the
-- index retention deletes by.
ALTER TABLE parked_message
  ADD COLUMN kind VARCHAR(20) NOT NULL DEFAULT 'undecodable' AFTER event_id,
  ADD COLUMN raw_sha256 CHAR(64) NULL AFTER raw_value,
  ADD COLUMN raw_length INT NULL AFTER raw_sha256,
  ADD COLUMN replayed_at DATETIME(6) NULL,
  ADD KEY ix_parked_at (parked_at),
  ADD KEY ix_parked_replayed (replayed_at);

-- Rows parked before: the kind from the reason's wording, then the bytes cut to the excerpt.
UPDATE parked_message SET kind = CASE
  WHEN reason LIKE 'failed %' THEN 'poison'
  WHEN reason LIKE 'bad signature%' THEN 'bad_signature'
  WHEN reason LIKE 'headers and value%' THEN 'mismatch'
  ELSE 'undecodable' END;

UPDATE parked_message SET raw_sha256 = SHA2(raw_value, 256), raw_length = LENGTH(raw_value),
  raw_value = LEFT(raw_value, 2048) WHERE raw_value IS NOT NULL;
