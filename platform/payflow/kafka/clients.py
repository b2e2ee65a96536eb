"""Producer/consumer factories and topic creation, with the settings the local broker needs."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from payflow.kafka import autocreate, overlap

log = logging.getLogger("payflow.kafka")


def make_producer(bootstrap: str, timeout_s: float) -> AIOKafkaProducer:
    autocreate.install()  # a lost topic is made by payflow.kafka.topics only, with its partitions
    # No idempotent producer: the local broker rejects InitProducerId; consumers dedupe instead.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        # Default max_batch_size (16 KB) on purpose. 256 KB made a relay batch's enqueue 0.36x as
        # long (bench/bench_producer_batch.py), but broker-restart at 300/s then deviated in 4 of 4
        # runs: tansu's memory engine gives batches retried across its restart offsets that overlap
        # records already in the log, and a consumer sees only one record per offset, so bigger
        # batches hid more events than the re-drive could heal within the experiment's bound.
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        metadata_max_age_ms=5000,
        retry_backoff_ms=100,
    )


def make_consumer(bootstrap: str, group: str, topics: list[str], fetch_wait_s: float,
                  fetch_min_bytes: int, listener: ConsumerRebalanceListener | None = None) -> AIOKafkaConsumer:
    """A group member of `topics`; `listener` hears of the group's rebalances. It reads every
    record of batches that overlap in offsets (payflow.kafka.overlap) and never makes a topic it
    asks about (payflow.kafka.autocreate)."""
    overlap.install()
    autocreate.install()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        # the broker holds a fetch until this much data is there or this long has passed
        # (Settings.consumer_fetch_min_bytes, consumer_fetch_wait_s)
        fetch_max_wait_ms=max(1, round(fetch_wait_s * 1000)),
        fetch_min_bytes=fetch_min_bytes,
        # Consumers take each fetch answer whole (payflow.kafka.overlap): this bounds one poll
        # (about 2,000 events), as `max_records` did before.
        fetch_max_bytes=1024 * 1024,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=5000,
        session_timeout_ms=10000,
        # how long the coordinator waits for members to rejoin in a rebalance (default: 5 minutes)
        rebalance_timeout_ms=15000,
        heartbeat_interval_ms=1000,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )
    consumer.subscribe(topics, listener=listener)
    return consumer


