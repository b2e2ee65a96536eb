-- The relay leases due events in event_id order (DESIGN: batches in event_id order). Through
-- ix_pending (published, dead, next_attempt_at, event_id) that meant reading and sorting every due
-- row to return the first batch: the further behind the relay, the costlier each lease. This index
-- reads them in event_id order and stops after the batch; ix_pending stays for a broker outage,
-- when most pending rows are not due and a range on next_attempt_at finds the few that are.
ALTER TABLE outbox_event ADD KEY ix_pending_order (published, dead, event_id);
