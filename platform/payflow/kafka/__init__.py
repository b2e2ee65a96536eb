"""Kafka client shells (aiokafka) tuned for the local broker's limits (DESIGN.md §9)."""
