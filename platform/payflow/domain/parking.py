"""Why a consumer parks a message, as a closed set (pure), and what of its bytes is kept.

The reason's kind labels metrics and decides what a parked row means: a kind in `EVENT_KINDS` is an
authentic event that failed every attempt (terminal until a person replays it, never re-driven);
any other kind is a message with no trustworthy event id (forged, altered, undecodable), whose
detail text may come from whoever produced it and so appears only in the row and the log."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class ParkKind(StrEnum):
    UNDECODABLE = "undecodable"      # not a well-formed event
    UNSIGNED = "unsigned"            # no signature header
    BAD_SIGNATURE = "bad_signature"  # a signature that does not verify: forged or altered
    MISMATCH = "mismatch"            # headers and value name different events
    EXPIRED = "expired"              # signed or created longer ago than the inbox can deduplicate
    POISON = "poison"                # an authentic event that failed every attempt
    LOCK_TIMEOUT = "lock_timeout"    # an authentic event whose rows stayed locked every rerun


# Parked rows of these kinds name a real event of the shard they are parked on.
EVENT_KINDS: frozenset[ParkKind] = frozenset({ParkKind.POISON, ParkKind.LOCK_TIMEOUT})

# A forged message may be as large as the broker allows; the row keeps this much of it, with the
# digest and length of the whole.
EXCERPT_BYTES = 2048


@dataclass(frozen=True)
class Kept:
    excerpt: bytes
    sha256: str
    length: int


def keep(value: bytes) -> Kept:
    """The bounded part of a message's value that a parked row stores."""
    return Kept(value[:EXCERPT_BYTES], hashlib.sha256(value).hexdigest(), len(value))
