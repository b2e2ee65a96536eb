"""Merchant API keys: their format, how they are hashed and checked, and what a rotation does to
the keys it replaces. Pure: no I/O; the store (payflow.store.merchant_keys) keeps the hashes.

A key reads `pf.<merchantId>.<keyId>.<secret>`: the merchant id routes the check to the merchant's
shard (a key's owner is found without asking every shard), the key id (16 hex digits) names the
row, and the secret is 256 random bits (43 base64url characters). Only SHA-256 of the whole key is
stored.

Why a fast hash and not bcrypt/argon2: those slow down guessing of low-entropy passwords. A
256-bit random secret cannot be guessed however fast the hash is, and a slow hash would put
tens of milliseconds of CPU on every API request. The comparison is constant-time all the same
(hmac.compare_digest), so timing tells nothing about how much of a hash matched."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

PREFIX = "pf"
KEY_ID_HEX = 16
SECRET_BYTES = 32
_TOKEN = re.compile(r"^pf\.([A-Za-z0-9_-]{1,32})\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")
_BEARER = "bearer "
# A key id as an operator types it (revoke, list output).
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `token` is shown to its owner once and never stored."""

    merchant_id: str
    key_id: str
    token: str
    secret_hash: bytes


class PresentedKey(NamedTuple):
    """What a request's Authorization header claims: the merchant and key it names, and the hash of
    the whole key (compared with the stored one). A tuple: one is made per request."""

    merchant_id: str
    key_id: str
    secret_hash: bytes


@dataclass(frozen=True)
class StoredKey:
    """One usable key of a merchant as the store reads it: `valid_for_s` is how much longer it is
    valid by the shard's clock (None: no expiry)."""

    key_id: str
    secret_hash: bytes
    valid_for_s: float | None = None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(merchant_id: str) -> IssuedKey:
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    token = f"{PREFIX}.{merchant_id}.{key_id}.{secrets.token_urlsafe(SECRET_BYTES)}"
    if _TOKEN.match(token) is None:  # only an invalid merchant id can get here
        raise ValueError(f"'{merchant_id}' is not a merchant id")
    return IssuedKey(merchant_id, key_id, token, hash_token(token))


def parse_token(token: str) -> PresentedKey | None:
    m = _TOKEN.match(token)
    if m is None:
        return None
    return PresentedKey(m.group(1), m.group(2), hash_token(token))


def parse_authorization(header: str | None) -> PresentedKey | None:
    """The key of an `Authorization: Bearer <key>` header; None when absent or not a key. Written
    flat (no helper calls): it runs on every API request."""
    if not header or not (header.startswith("Bearer ") or header[:7].lower() == _BEARER):
        return None
    token = header[7:]
    m = _TOKEN.match(token)
    if m is None:
        token = token.strip()
        m = _TOKEN.match(token)
        if m is None:
            return None
    merchant_id, key_id, _ = m.groups()
    return PresentedKey(merchant_id, key_id, hashlib.sha256(token.encode()).digest())


def matches(presented: PresentedKey, stored: Iterable[StoredKey]) -> bool:
    """True when one of the merchant's usable keys is the presented one (hash compared in constant
    time; the key id is no secret and only picks the row)."""
    for key in stored:
        if key.key_id == presented.key_id:
            return hmac.compare_digest(key.secret_hash, presented.secret_hash)
    return False


def rotation_expiries(active: Iterable[StoredKey], grace_s: float) -> dict[str, float]:
    """What a rotation does to the keys it replaces: each stays valid for the grace period, or for
    what it had left if that is shorter (a rotation never lengthens a key's life). {key id: seconds
    left}; 0 grace ends them at once."""
    if grace_s < 0:
        raise ValueError(f"grace {grace_s} must be ≥ 0 seconds")
    return {k.key_id: grace_s if k.valid_for_s is None else min(k.valid_for_s, grace_s) for k in active}
