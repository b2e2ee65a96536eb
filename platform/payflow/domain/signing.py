"""Event authentication (pure): the relay signs what it publishes with a per-stack secret, the
consumers apply only what verifies. The broker is unauthenticated, so without this any local
process could publish an event whose amounts the ledger would trust."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "signature"


def sign(secret: bytes, event_id: int, event_type: str, value: bytes) -> str:
    """HMAC-SHA256 over the id, the type and the exact bytes of the value, as hex."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    mac.update(f"{event_id}\n{event_type}\n".encode())
    mac.update(value)
    return mac.hexdigest()


def verify(secret: bytes, event_id: int, event_type: str, value: bytes, signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, event_id, event_type, value), signature)
