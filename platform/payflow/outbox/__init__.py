"""The transactional outbox relay: claim → publish through the breaker → mark."""
