"""A Kafka record's bytes and headers -> the event it carries, or why it must be parked (pure).

The relay signs every event it publishes (payflow.domain.signing) over every header read here and
the exact bytes of the value; a record that does not verify, does not parse, whose headers and value
disagree, or that is too old for the inbox to deduplicate (signed or created longer ago than
`max_age_s`: "expired") is a `Rejection`. A decoded `Event` carries the shard that owns its payment, worked out
here once and used by everything downstream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from payflow.domain.parking import ParkKind
from payflow.domain.sharding import shard_for_id
from payflow.domain.signing import SIGNATURE_HEADER, SIGNED_AT_HEADER, verify


@dataclass(frozen=True)
class Event:
    event_id: int
    event_type: str
    payload: dict[str, Any]
    created_at: float | None
    shard: int  # the shard that owns the payment: where the event is applied
    signed_at: float | None = None  # when the relay signed it (epoch seconds), for `expiry`

    @property
    def payment_id(self) -> int:
        return int(self.payload["paymentId"])


@dataclass(frozen=True)
class Rejection:
    """A record that is not an authentic, well-formed event: parked, never applied. `reason` is
    the detail (it may quote what the record's producer chose), `kind` the closed category."""

    kind: ParkKind
    reason: str
    event_id: int | None = None  # as the record claims it: not to be trusted


class Record(Protocol):
    """What decoding reads of a record (aiokafka's ConsumerRecord has it)."""

    @property
    def value(self) -> Any: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def payment_id_of(value: Any) -> int | None:
    """The payment id a record's value names, unchecked (None when it names none): enough to keep
    one payment's records apart before decoding; a value that lies does not verify and is parked."""
    try:
        body = orjson.loads(value)
        return int(body["paymentId"]) if isinstance(body, dict) else None
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
        return None


def decode(record: Record, secret: bytes | None, shard_count: int, now: float, max_age_s: float) -> Event | Rejection:
    """The event in a record, after checking the relay's signature over its headers and exact bytes
    (no check when `secret` is None: an unauthenticated stack) and its age against `max_age_s`
    (`payflow.domain.signing.max_event_age_s`), with `now` from this host's clock (epoch seconds)."""
    raw = dict(record.headers or ())
    headers = {k: v.decode(errors="replace") for k, v in raw.items()}
    event_id: int | None = None
    try:
        event_id = int(headers["eventId"])
        event_type = headers["eventType"]
        body = orjson.loads(record.value)
        if not isinstance(body, dict):
            raise ValueError("value is not a JSON object")
        payment_id = int(body["paymentId"])
        created = headers.get("createdAt")
        created_at = float(created) if created else None
        signed = headers.get(SIGNED_AT_HEADER)
        signed_at = int(signed) / 1000 if signed else None
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        return Rejection(ParkKind.UNDECODABLE, f"undecodable: {type(exc).__name__}: {exc}", event_id)
    if secret is not None:
        if SIGNATURE_HEADER not in raw:
            return Rejection(ParkKind.UNSIGNED, "unsigned: no signature, so not published by this stack's relay",
                             event_id)
        if not verify(secret, raw, record.value):
            return Rejection(ParkKind.BAD_SIGNATURE, "bad signature: not published by this stack's relay, or altered",
                             event_id)
    expired = expiry(signed_at, created_at, now, max_age_s, event_id)
    if expired is not None:
        return expired
    if body.get("eventId") not in (None, event_id) or body.get("eventType") not in (None, event_type):
        return Rejection(ParkKind.MISMATCH, "headers and value disagree", event_id)
    try:
        shard = shard_for_id(payment_id, shard_count)
    except ValueError:
        return Rejection(ParkKind.UNDECODABLE, f"undecodable: payment id {payment_id}", event_id)
    return Event(event_id=event_id, event_type=event_type, payload=body, created_at=created_at, shard=shard,
                 signed_at=signed_at)


def expiry(signed_at: float | None, created_at: float | None, now: float, max_age_s: float,
           event_id: int | None) -> Rejection | None:
    """The age rule, on its own: a record signed or created longer ago than `max_age_s` is
    expired (the inbox may have forgotten it). Decode applies it; so does a retry of an event that
    waited for its shard, with the clock of its retry."""
    for what, at in (("signed", signed_at), ("created", created_at)):
        if at is not None and now - at > max_age_s:
            return Rejection(ParkKind.EXPIRED, f"expired: {what} {now - at:.0f} s ago, beyond {max_age_s:.0f} s: "
                             "the inbox may no longer know whether it was applied", event_id)
    return None
