-- Every table that gains rows per payment, event or message is pruned through an index on its age
-- (payflow.store.retention): a batch reads about the rows it deletes, never the whole table.
ALTER TABLE acquirer_refund ADD KEY ix_acquirer_created (created_at);
-- An acquirer record may go once its refund request is final, found by the record's key.
ALTER TABLE refund_request ADD KEY ix_refund_acquirer_key (acquirer_key);
ALTER TABLE consumer_progress ADD KEY ix_progress_updated (updated_at);
