"""Event authentication (pure): the relay signs what it publishes with a per-stack secret, the
consumers apply only what verifies. The broker is unauthenticated, so without this any local
process could publish an event whose amounts the ledger would trust.

The signature covers the value and every header a consumer reads (`SIGNED_HEADERS`), including
the time of signing: a record copied off the broker and produced again later keeps its old
`signedAt`, and consumers refuse it once it is older than their inbox can deduplicate
(`max_event_age_s`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "signature"
SIGNED_AT_HEADER = "signedAt"  # epoch milliseconds on the relay's clock, when it published
# Every header a consumer reads (payflow.consumers.decode; the handlers read only the decoded
# event: the value, and createdAt for the settlement day).
SIGNED_HEADERS = ("eventId", "eventType", "createdAt", SIGNED_AT_HEADER)


def sign(secret: bytes, headers: Mapping[str, bytes], value: bytes) -> str:
    """HMAC-SHA256, as hex, over every signed header (each length-prefixed, so no bytes can move
    from one to the next) and the exact bytes of the value. KeyError when a signed header is missing."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for name in SIGNED_HEADERS:
        field = headers[name]
        mac.update(f"{name}:{len(field)}:".encode())
        mac.update(field)
    mac.update(f"value:{len(value)}:".encode())
    mac.update(value)
    return mac.hexdigest()


def verify(secret: bytes, headers: Mapping[str, bytes], value: bytes) -> bool:
    """Whether `headers` carry a signature of this secret over themselves and `value`; False when
    the signature or any signed header is missing (e.g. a record signed before signedAt existed)."""
    signature = headers.get(SIGNATURE_HEADER)
    if not signature or any(name not in headers for name in SIGNED_HEADERS):
        return False
    return hmac.compare_digest(sign(secret, headers, value).encode(), signature)


def max_event_age_s(processed_retention_s: float, outbox_retention_s: float) -> float:
    """How old (since signing, and since creation) an event a consumer still applies may be.

    The inbox (processed_event) forgets an event processed_retention_s after processing it, so a
    record applied once and presented again later than that would be applied twice. Signing
    happens before processing, so refusing records signed longer ago than the bound keeps every
    accepted record inside its inbox row's life; the same bound on createdAt keeps out a row the
    relay itself republishes after so long (re-driven, then stuck behind a long outage).

    Legit events are never that old: the relay signs at publish time (a re-drive or a backlog
    carries a fresh signedAt), the outbox keeps a published row past outbox_retention_s only while
    a consumer lacks it and deletes it at this bound, and the re-drive leaves rows older than the
    bound less its own window alone (payflow.store.outbox). (A row never published at all, behind
    a relay outage longer than the bound, is parked "expired": visible, not applied.)

    The bound sits halfway between the two retentions; settings guarantee the half above it holds
    the re-drive window plus CLOCK_MARGIN_S (payflow.config), for clocks (the relay's signedAt, the
    shard's createdAt and the consumer's clock differ), a record in flight and a deferred one."""
    return processed_retention_s - (processed_retention_s - outbox_retention_s) / 2
