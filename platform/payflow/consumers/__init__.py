"""Kafka consumers: at-least-once delivery, exactly-once effect via processed_event."""
