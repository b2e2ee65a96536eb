"""`merchant_api_key`: the merchants' API keys, kept as hashes on the merchant's shard (format and
checks: payflow.domain.api_keys). The ingest reads a merchant's usable keys; payctl issues, lists,
rotates and revokes them. Times are the shard's clock: a key's remaining life is computed here,
never compared with another machine's time. The caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from payflow.db.pool import Cursor
from payflow.domain.api_keys import StoredKey

_USABLE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > NOW(6))"


@dataclass(frozen=True)
class KeyRow:
    """One key as `payctl merchants list` shows it (never its secret or hash)."""

    merchant_id: str
    key_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    usable: bool


def insert(cur: Cursor, merchant_id: str, key_id: str, secret_hash: bytes) -> None:
    cur.execute("INSERT INTO merchant_api_key (key_id, merchant_id, secret_hash) VALUES (%s, %s, %s)",
                (key_id, merchant_id, secret_hash))


def usable(cur: Cursor, merchant_id: str) -> list[StoredKey]:
    """The merchant's keys that are neither revoked nor expired, with their remaining life."""
    cur.execute(
        f"SELECT key_id, secret_hash, TIMESTAMPDIFF(MICROSECOND, NOW(6), expires_at) FROM merchant_api_key "
        f"WHERE merchant_id=%s AND {_USABLE}",
        (merchant_id,),
    )
    return [StoredKey(str(r[0]), bytes(r[1]), None if r[2] is None else int(r[2]) / 1e6) for r in cur.fetchall()]


def usable_ids(cur: Cursor, merchant_ids: Sequence[str]) -> set[str]:
    """Of the given merchants' keys, the ids of those still usable (payctl checks its saved keys)."""
    if not merchant_ids:
        return set()
    marks = ", ".join(["%s"] * len(merchant_ids))
    cur.execute(f"SELECT key_id FROM merchant_api_key WHERE merchant_id IN ({marks}) AND {_USABLE}",
                tuple(merchant_ids))
    return {str(r[0]) for r in cur.fetchall()}


def listing(cur: Cursor, merchant_id: str | None, limit: int) -> list[KeyRow]:
    where = "WHERE merchant_id=%s " if merchant_id is not None else ""
    args: tuple[object, ...] = (merchant_id, limit) if merchant_id is not None else (limit,)
    cur.execute(
        f"SELECT merchant_id, key_id, created_at, expires_at, revoked_at, {_USABLE} FROM merchant_api_key "
        f"{where}ORDER BY merchant_id, created_at, key_id LIMIT %s",
        args,
    )
    return [KeyRow(str(r[0]), str(r[1]), r[2], r[3], r[4], bool(r[5])) for r in cur.fetchall()]


def expire_in(cur: Cursor, key_id: str, seconds: float) -> None:
    """Let a key live `seconds` more by the shard's clock (a rotation's grace)."""
    cur.execute("UPDATE merchant_api_key SET expires_at = NOW(6) + INTERVAL %s MICROSECOND WHERE key_id=%s",
                (int(seconds * 1e6), key_id))


def revoke(cur: Cursor, merchant_id: str, key_id: str | None) -> int:
    """End one key of the merchant (or all of them: key_id None) now; how many were still usable."""
    if key_id is None:
        cur.execute(f"UPDATE merchant_api_key SET revoked_at = NOW(6) WHERE merchant_id=%s AND {_USABLE}",
                    (merchant_id,))
    else:
        cur.execute(f"UPDATE merchant_api_key SET revoked_at = NOW(6) WHERE merchant_id=%s AND key_id=%s "
                    f"AND {_USABLE}", (merchant_id, key_id))
    return int(cur.rowcount)
