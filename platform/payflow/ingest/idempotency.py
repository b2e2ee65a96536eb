"""Idempotency keys: which key applies and the request fingerprint (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from payflow.ingest.errors import validation_failed


def resolve_key(body_key: str | None, header_key: str | None) -> str | None:
    if header_key is not None:
        header_key = header_key.strip()
        if not header_key or len(header_key) > 64:
            raise validation_failed([{"field": "Idempotency-Key", "rule": "length 1..64"}])
    if body_key and header_key and body_key != header_key:
        raise validation_failed(
            [{"field": "idempotencyKey", "rule": "must equal the Idempotency-Key header when both are sent"}]
        )
    return body_key or header_key


def fingerprint(operation: str, payment_id: int | None, body: dict[str, Any]) -> str:
    """Same operation, target and body (key excluded) → same hash."""
    material = {
        "op": operation,
        "paymentId": payment_id,
        "body": {k: v for k, v in body.items() if k != "idempotencyKey"},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
