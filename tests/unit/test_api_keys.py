"""Merchant API keys: format, hash, verification, rotation grace (payflow.domain.api_keys) and the
ingest's key cache and failed-attempt limiter (payflow.ingest.auth), with time passed in."""

from __future__ import annotations

import hashlib

import pytest

from payflow.domain import api_keys
from payflow.domain.api_keys import StoredKey
from payflow.ingest.auth import Authenticator, AuthFailed, Failure, FailureLimiter, KeyCache, source_address


def test_an_issued_key_parses_back_to_its_merchant_and_id_and_only_its_hash_is_kept():
    key = api_keys.issue("MERCHANT-2")
    presented = api_keys.parse_authorization(f"Bearer {key.token}")
    assert presented is not None
    assert (presented.merchant_id, presented.key_id) == ("MERCHANT-2", key.key_id)
    assert presented.secret_hash == key.secret_hash == hashlib.sha256(key.token.encode()).digest()
    assert key.token.encode() not in key.secret_hash
    assert api_keys.issue("MERCHANT-2").token != key.token


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer pf.M.0123456789abcdef.short",
                                    "Bearer pf.M 1.0123456789abcdef." + "a" * 43,
                                    "Bearer xx.M.0123456789abcdef." + "a" * 43])
def test_anything_but_a_bearer_key_is_no_key(header):
    assert api_keys.parse_authorization(header) is None


def test_an_invalid_merchant_id_cannot_get_a_key():
    with pytest.raises(ValueError):
        api_keys.issue("M 1")


def test_a_key_matches_only_its_stored_hash():
    key = api_keys.issue("MERCHANT-2")
    presented = api_keys.parse_token(key.token)
    assert presented is not None
    assert api_keys.matches(presented, [StoredKey(key.key_id, key.secret_hash)])
    assert not api_keys.matches(presented, [StoredKey(key.key_id, b"\0" * 32)])
    assert not api_keys.matches(presented, [StoredKey("f" * 16, key.secret_hash)])


def test_rotation_keeps_old_keys_for_the_grace_but_never_lengthens_them():
    active = [StoredKey("a" * 16, b"", None), StoredKey("b" * 16, b"", 30.0), StoredKey("c" * 16, b"", 9999.0)]
    assert api_keys.rotation_expiries(active, 600) == {"a" * 16: 600, "b" * 16: 30.0, "c" * 16: 600}
    assert api_keys.rotation_expiries(active, 0) == {"a" * 16: 0, "b" * 16: 0, "c" * 16: 0}
    with pytest.raises(ValueError):
        api_keys.rotation_expiries(active, -1)


class Lookups:
    def __init__(self, keys: list[StoredKey]) -> None:
        self.keys = keys
        self.calls = 0

    def __call__(self, merchant_id: str) -> list[StoredKey]:
        self.calls += 1
        return list(self.keys)


def _auth(keys: list[StoredKey], limit: int = 3) -> tuple[Authenticator, Lookups, list[float]]:
    lookups = Lookups(keys)
    clock = [100.0]
    return (Authenticator(KeyCache(lookups, ttl_s=30, refresh_s=1, max_merchants=100),
                          FailureLimiter(limit, window_s=10, max_sources=16), clock=lambda: clock[0]),
            lookups, clock)


def test_the_cache_reads_a_merchant_once_per_ttl_and_a_revocation_lands_within_it():
    key = api_keys.issue("MERCHANT-2")
    auth, lookups, clock = _auth([StoredKey(key.key_id, key.secret_hash)])
    for _ in range(50):
        assert auth.authenticate(f"Bearer {key.token}", lambda: "1.2.3.4") == "MERCHANT-2"
    assert lookups.calls == 1
    lookups.keys = []  # revoked
    clock[0] += 29
    assert auth.authenticate(f"Bearer {key.token}", lambda: "1.2.3.4") == "MERCHANT-2"
    clock[0] += 1
    with pytest.raises(AuthFailed) as failed:
        auth.authenticate(f"Bearer {key.token}", lambda: "1.2.3.4")
    assert failed.value.reason is Failure.INVALID


def test_a_new_key_works_at_once_and_unknown_ids_are_looked_up_at_most_once_a_refresh():
    old, new = api_keys.issue("MERCHANT-2"), api_keys.issue("MERCHANT-2")
    auth, lookups, clock = _auth([StoredKey(old.key_id, old.secret_hash)], limit=1000)
    auth.authenticate(f"Bearer {old.token}", lambda: "s")
    lookups.keys.append(StoredKey(new.key_id, new.secret_hash))
    for _ in range(20):
        with pytest.raises(AuthFailed):
            auth.authenticate(f"Bearer {new.token}", lambda: "s")  # within refresh_s: not looked up again
    assert lookups.calls == 1
    clock[0] += 1
    assert auth.authenticate(f"Bearer {new.token}", lambda: "s") == "MERCHANT-2"
    assert lookups.calls == 2


def test_a_key_whose_grace_ended_is_refused_before_the_cache_expires():
    key = api_keys.issue("MERCHANT-2")
    auth, _, clock = _auth([StoredKey(key.key_id, key.secret_hash, valid_for_s=5)])
    assert auth.authenticate(f"Bearer {key.token}", lambda: "s") == "MERCHANT-2"
    clock[0] += 5
    with pytest.raises(AuthFailed):
        auth.authenticate(f"Bearer {key.token}", lambda: "s")


def test_failures_per_source_are_limited_then_forgiven_after_the_window():
    key = api_keys.issue("MERCHANT-2")
    auth, _, clock = _auth([StoredKey(key.key_id, key.secret_hash)], limit=3)
    reasons = []
    for header in (None, "Bearer nonsense", "Bearer " + key.token[:-1] + "x"):
        with pytest.raises(AuthFailed) as failed:
            auth.authenticate(header, lambda: "6.6.6.6")
        reasons.append(failed.value.reason)
    assert reasons == [Failure.MISSING, Failure.MALFORMED, Failure.INVALID]
    with pytest.raises(AuthFailed) as failed:
        auth.authenticate(f"Bearer {key.token}", lambda: "6.6.6.6")  # even a good key: the source is blocked
    assert (failed.value.reason, failed.value.retry_after_s) == (Failure.RATE_LIMITED, 10)
    assert auth.authenticate(f"Bearer {key.token}", lambda: "7.7.7.7") == "MERCHANT-2"  # another source is not
    clock[0] += 10
    assert auth.authenticate(f"Bearer {key.token}", lambda: "6.6.6.6") == "MERCHANT-2"


def test_the_limiter_and_the_cache_stay_bounded():
    limiter = FailureLimiter(limit=1, window_s=10, max_sources=16)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter._windows) == 16
    cache = KeyCache(Lookups([]), ttl_s=30, refresh_s=1, max_merchants=100)
    for i in range(1000):
        presented = api_keys.parse_token(api_keys.issue(f"M{i}").token)
        assert presented is not None and not cache.verify(presented, 0.0)
    assert len(cache._entries) == 100


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    trusted = frozenset({"127.0.0.1"})
    assert source_address("127.0.0.1", "9.9.9.9", trusted) == "9.9.9.9"
    assert source_address("127.0.0.1", "1.1.1.1, 9.9.9.9", trusted) == "9.9.9.9"
    assert source_address("5.5.5.5", "9.9.9.9", trusted) == "5.5.5.5"
    assert source_address("127.0.0.1", None, trusted) == "127.0.0.1"
