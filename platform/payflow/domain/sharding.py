"""Which shard owns a merchant or a payment (DESIGN.md §2). Pure functions."""

from __future__ import annotations

import re
import zlib

# The one statement of the merchant-id rule (DESIGN.md §2): the request models, the OpenAPI
# document's query parameter, and payctl's read-only queries and MCP tools use it.
MERCHANT_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
MERCHANT_ID_MAX_LENGTH = 32


def is_merchant_id(value: object) -> bool:
    """Does `value` follow the merchant-id rule (1-32 characters of A-Z a-z 0-9 _ -)?"""
    return (isinstance(value, str) and 1 <= len(value) <= MERCHANT_ID_MAX_LENGTH
            and re.fullmatch(MERCHANT_ID_PATTERN, value) is not None)


def shard_for_merchant(merchant_id: str, shard_count: int) -> int:
    """Shard index for a merchant: its digits as an integer mod N, else crc32 mod N."""
    if shard_count < 1:
        raise ValueError("shard_count must be >= 1")
    digits = "".join(ch for ch in merchant_id if ch.isdigit())
    if digits:
        return int(digits) % shard_count
    return zlib.crc32(merchant_id.encode("utf-8")) % shard_count


def shard_for_id(entity_id: int, shard_count: int) -> int:
    """Shard index encoded in a payment or event id: (id - 1) mod N."""
    if entity_id < 1:
        raise ValueError("ids start at 1")
    return (entity_id - 1) % shard_count


def auto_increment_settings(shard_index: int, shard_count: int) -> tuple[int, int]:
    """(increment, offset) so that every id made on shard k satisfies (id-1) mod N == k."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index {shard_index} out of range for {shard_count} shards")
    return shard_count, shard_index + 1
