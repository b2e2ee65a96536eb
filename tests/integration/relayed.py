"""Records as the relay publishes them (same value, headers and signature), built from outbox
rows, for tests that hand records to a consumer's processor directly."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from payflow.outbox.publisher import encode, headers
from payflow.store.outbox import OutboxEvent


def relayed_record(stack: Any, event_id: int, secret: bytes | None, offset: int = 0,
                   shard_index: int = 0) -> tuple[TopicPartition, Any]:
    """The partition and record a consumer would be given for outbox event `event_id`."""
    aggregate_id, event_type, payload, created_at_s = stack.query(
        shard_index, "SELECT aggregate_id, event_type, payload, UNIX_TIMESTAMP(created_at) FROM outbox_event "
        "WHERE event_id=%s", (event_id,))[0]
    event = OutboxEvent(event_id=int(event_id), aggregate_id=int(aggregate_id), event_type=event_type,
                        payload=json.loads(payload), retry_count=0, created_at_s=float(created_at_s))
    value = encode(event)
    record = SimpleNamespace(value=value, headers=headers(event, value, secret), offset=offset,
                             timestamp=int(float(created_at_s) * 1000))
    return TopicPartition(event.topic, 0), record
