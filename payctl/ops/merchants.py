"""Merchants' API keys (`payctl merchants create|list|rotate|revoke`) and the keys payctl's own
clients use (load tests, demo, smoke, the console's jobs).

A key's secret exists in clear only in what `create` and `rotate` return (shown once) and in the
state folder's client-key file (mode 0600), which holds the keys payctl issued for itself so later
runs reuse them. The shards keep hashes (payflow.store.merchant_keys)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from payctl.atomic import write_atomic
from payctl.errors import UsageError
from payctl.ops.queries import check_merchant, merchant_vm
from payctl.stack.paths import StatePaths
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain import api_keys
from payflow.domain.sharding import is_merchant_id
from payflow.store import merchant_keys

MAX_LIST = 1000
MAX_GRACE_S = 30 * 24 * 3600.0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class ReplacedKey:
    """A key a rotation ends: it stays valid this many seconds more."""

    key_id: str
    valid_for_s: float

    def to_json(self) -> dict[str, Any]:
        return {"keyId": self.key_id, "validForS": self.valid_for_s}


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just issued: the only place its secret (`key`) appears."""

    merchant_id: str
    shard: str
    key_id: str
    key: str
    replaced: tuple[ReplacedKey, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"merchantId": self.merchant_id, "shard": self.shard, "keyId": self.key_id, "key": self.key,
                "replaced": [r.to_json() for r in self.replaced]}


@dataclass(frozen=True, slots=True)
class Revoked:
    """Keys ended now; ingests refuse them within `effective_within_s`."""

    merchant_id: str
    shard: str
    revoked: int
    effective_within_s: float

    def to_json(self) -> dict[str, Any]:
        return {"merchantId": self.merchant_id, "shard": self.shard, "revoked": self.revoked,
                "effectiveWithinS": self.effective_within_s}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as `merchants list` shows it (never its secret)."""

    merchant_id: str
    key_id: str
    shard: str
    state: str  # usable | revoked | expired
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"merchantId": self.merchant_id, "keyId": self.key_id, "shard": self.shard, "state": self.state,
                "createdAt": _iso(self.created_at), "expiresAt": _iso(self.expires_at),
                "revokedAt": _iso(self.revoked_at)}


def _issue(topo: Topology, merchant_id: str, grace_s: float | None) -> IssuedKey:
    """A new key for the merchant; with `grace_s`, the merchant's other keys end after it (rotation)."""
    vm, shard = merchant_vm(topo, merchant_id)
    key = api_keys.issue(merchant_id)
    replaced: dict[str, float] = {}
    with shard_connection(topo, vm) as conn, conn.cursor() as cur:
        if grace_s is not None:
            replaced = api_keys.rotation_expiries(merchant_keys.usable(cur, merchant_id), grace_s)
            for key_id, seconds in replaced.items():
                merchant_keys.expire_in(cur, key_id, seconds)
        merchant_keys.insert(cur, merchant_id, key.key_id, key.secret_hash)
        conn.commit()
    return IssuedKey(merchant_id, shard, key.key_id, key.token,
                     tuple(ReplacedKey(k, round(s, 3)) for k, s in sorted(replaced.items())))


def create(topo: Topology, merchant_id: str) -> IssuedKey:
    """Issue a key (a merchant may hold several); the answer is the only place its secret appears."""
    return _issue(topo, check_merchant(merchant_id, "merchant"), None)


def rotate(topo: Topology, merchant_id: str, grace_s: float | None = None) -> IssuedKey:
    """Issue a new key; the merchant's other keys stay valid for the grace period (api_key_grace_s
    unless given), then stop working."""
    grace = topo.settings.api_key_grace_s if grace_s is None else grace_s
    if not 0 <= grace <= MAX_GRACE_S:
        raise UsageError(f"--grace {grace:g} is out of range", f"give 0..{MAX_GRACE_S:g} seconds")
    return _issue(topo, check_merchant(merchant_id, "merchant"), grace)


def revoke(topo: Topology, merchant_id: str, key_id: str | None) -> Revoked:
    """End one key (or every key of the merchant: key_id None) now. Ingests stop accepting it within
    api_key_cache_ttl_s. UsageError when nothing usable matched."""
    vm, shard = merchant_vm(topo, check_merchant(merchant_id, "merchant"))
    if key_id is not None and not api_keys.KEY_ID_PATTERN.match(key_id):
        raise UsageError(f"key id '{key_id}' is not a key id", "16 hex digits, as `payctl merchants list` shows")
    with shard_connection(topo, vm) as conn, conn.cursor() as cur:
        count = merchant_keys.revoke(cur, merchant_id, key_id)
        conn.commit()
    if count == 0:
        what = f"key {key_id}" if key_id else "any key"
        raise UsageError(f"{merchant_id} has no usable {what}", "see `payctl merchants list`")
    return Revoked(merchant_id, shard, count, topo.settings.api_key_cache_ttl_s)


def list_keys(topo: Topology, merchant_id: str | None = None) -> list[KeyInfo]:
    """Keys (never their secrets) of one merchant, or of every merchant per shard."""
    if merchant_id is not None:
        vms = [merchant_vm(topo, check_merchant(merchant_id, "merchant"))]
    else:
        vms = [(vm.name, topo.shard_name(i)) for i, vm in enumerate(topo.vms)]
    out: list[KeyInfo] = []
    for vm, shard in vms:
        with shard_connection(topo, vm) as conn, conn.cursor() as cur:
            rows = merchant_keys.listing(cur, merchant_id, MAX_LIST)
            conn.rollback()
        out += [KeyInfo(r.merchant_id, r.key_id, shard,
                        "usable" if r.usable else ("revoked" if r.revoked_at else "expired"),
                        r.created_at, r.expires_at, r.revoked_at)
                for r in rows]
    return out


def client_keys(topo: Topology, merchants: Iterable[str]) -> dict[str, str]:
    """{merchant: key} for payctl's own clients: the saved keys that are still usable, and a new
    key (saved) for every merchant without one. One query per shard, then one insert per new key."""
    wanted = sorted({check_merchant(m, "merchant") for m in merchants})
    path = StatePaths(topo.state_path()).client_keys_file
    try:
        saved: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    by_vm: dict[str, list[str]] = defaultdict(list)
    for m in wanted:
        by_vm[merchant_vm(topo, m)[0]].append(m)
    keys: dict[str, str] = {}
    for vm, merchants_here in by_vm.items():
        with shard_connection(topo, vm) as conn, conn.cursor() as cur:
            usable = merchant_keys.usable_ids(cur, merchants_here)
            for m in merchants_here:
                known = api_keys.parse_token(saved.get(m, ""))
                if known is not None and known.merchant_id == m and known.key_id in usable:
                    keys[m] = saved[m]
                    continue
                key = api_keys.issue(m)
                merchant_keys.insert(cur, m, key.key_id, key.secret_hash)
                keys[m] = key.token
            conn.commit()
    if any(saved.get(m) != k for m, k in keys.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({**saved, **keys}, indent=1, sort_keys=True), mode=0o600)
    return keys


def loadtest_merchants(max_number: int = 1000) -> list[str]:
    """The merchants the k6 scenarios use: MERCHANT-0 … MERCHANT-1000 (scenarios/k6/lib/common.js
    and original-flow.js)."""
    return [f"MERCHANT-{i}" for i in range(max_number + 1)]


def k6_env(topo: Topology) -> dict[str, str]:
    """What k6 needs in its environment to call as the scenarios' merchants: the file of their keys
    (issued on first use). Nothing with api_auth = "off": requests then carry no key."""
    if topo.settings.api_auth == "off":
        return {}
    client_keys(topo, loadtest_merchants())
    return {"PAYFLOW_KEYS_FILE": str(StatePaths(topo.state_path()).client_keys_file)}


def merchant_of(request: httpx.Request) -> str | None:
    """The merchant a payment request names: `merchantId` in its JSON body or its query."""
    named = request.url.params.get("merchantId")
    if named is None and request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            return None
        named = body.get("merchantId") if isinstance(body, dict) else None
    return named if isinstance(named, str) else None


class MerchantKeys(httpx.Auth):
    """httpx authentication for payctl's own clients (chaos probes and load, the demo): each
    request carries the key of the merchant it names, issued on first use (`preload`: at once).
    A request naming no valid merchant carries `fallback`'s key, so it reaches the API's own checks
    (400) instead of stopping at 401. Nothing is added with api_auth = "off"."""

    def __init__(self, topo: Topology, preload: Iterable[str] = (), fallback: str = "MERCHANT-1") -> None:
        self.topo = topo
        self.fallback = fallback
        self._preload = [*preload, fallback]
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}

    def key_for(self, merchant_id: str) -> str:
        """The merchant's key; the first call issues (or reads back) the preloaded merchants' keys."""
        with self._lock:
            if self._preload:
                self._keys.update(client_keys(self.topo, self._preload))
                self._preload = []
            if merchant_id not in self._keys:
                self._keys.update(client_keys(self.topo, [merchant_id]))
            return self._keys[merchant_id]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.topo.settings.api_auth == "on" and "Authorization" not in request.headers:
            named = merchant_of(request)
            merchant = named if named is not None and is_merchant_id(named) else self.fallback
            request.headers["Authorization"] = f"Bearer {self.key_for(merchant)}"
        yield request
