"""Idempotency keys: which key applies and the request fingerprint (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

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


_PLAIN = (str, int, type(None))


def fingerprint(operation: str, payment_id: int | None, body: dict[str, Any]) -> str:
    """Same operation, target and body (key excluded) → same hash.

    The hash is stored with each idempotency record and compared on every retry, so its input must
    stay byte for byte what it has always been: `json.dumps(sort_keys, compact)`. orjson writes the
    same bytes for a flat body of strings and integers whenever its output is printable ASCII (json
    escapes non-ASCII and DEL, orjson does not) at a fraction of the cost; anything else takes the
    original path. tests/unit/test_pure_cores.py holds the two to the same hash."""
    material = {
        "op": operation,
        "paymentId": payment_id,
        "body": {k: v for k, v in body.items() if k != "idempotencyKey"},
    }
    if all(type(v) in _PLAIN for v in body.values()):
        try:
            fast = orjson.dumps(material, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            fast = b"\xff"
        if fast.isascii() and b"\x7f" not in fast:
            return hashlib.sha256(fast).hexdigest()
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
