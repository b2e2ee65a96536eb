"""Event signatures (pure): every header a consumer reads and the value are signed, with the time
of signing; a consumer refuses what is too old to be deduplicated by its inbox."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from payflow.consumers.decode import Event, Rejection, decode
from payflow.domain.signing import SIGNATURE_HEADER, SIGNED_HEADERS, max_event_age_s, sign, verify

SECRET = b"test-secret"
DAY = 24 * 3600.0
NOW = 1_800_000_000.0
MAX_AGE = max_event_age_s(processed_retention_s=8 * DAY, outbox_retention_s=7 * DAY)
VALUE = orjson.dumps({"eventId": 7, "eventType": "PaymentCaptured", "paymentId": 4, "merchantId": "M1",
                      "currency": "EUR", "capturedAmount": 100})


def _headers(created_at: float = NOW - 5, signed_at: float = NOW - 1) -> dict[str, bytes]:
    return {"eventId": b"7", "eventType": b"PaymentCaptured", "createdAt": str(created_at).encode(),
            "signedAt": str(int(signed_at * 1000)).encode()}


def _signed(value: bytes = VALUE, **kw: float) -> dict[str, bytes]:
    h = _headers(**kw)
    return {**h, SIGNATURE_HEADER: sign(SECRET, h, value).encode()}


def test_every_header_a_consumer_reads_is_signed() -> None:
    assert set(SIGNED_HEADERS) == {"eventId", "eventType", "createdAt", "signedAt"}


def test_a_changed_header_value_or_secret_or_a_missing_header_fails() -> None:
    good = _signed()
    assert verify(SECRET, good, VALUE)
    for name in SIGNED_HEADERS:
        assert not verify(SECRET, {**good, name: good[name] + b"1"}, VALUE), name
        assert not verify(SECRET, {k: v for k, v in good.items() if k != name}, VALUE), name
    assert not verify(SECRET, good, VALUE + b" ")
    assert not verify(b"other", good, VALUE)
    assert not verify(SECRET, {k: v for k, v in good.items() if k != SIGNATURE_HEADER}, VALUE)
    with pytest.raises(KeyError):
        sign(SECRET, {k: v for k, v in _headers().items() if k != "createdAt"}, VALUE)


def test_header_boundaries_cannot_be_shifted() -> None:
    """Moving bytes from one header into the next must not keep the signature valid."""
    h = _headers()
    sig = sign(SECRET, h, VALUE)
    shifted = {**h, "eventId": b"7P", "eventType": b"aymentCaptured"}
    assert sign(SECRET, shifted, VALUE) != sig


def test_the_age_bound_stays_between_outbox_and_inbox_retention() -> None:
    assert 7 * DAY < MAX_AGE < 8 * DAY
    # the tightest settings allow: the inbox outlives the outbox by the re-drive delay only
    tight = max_event_age_s(processed_retention_s=3600 + 30, outbox_retention_s=3600)
    assert 3600 < tight < 3600 + 30


def _decode(headers: dict[str, bytes], value: bytes = VALUE, now: float = NOW) -> Event | Rejection:
    record = SimpleNamespace(value=value, headers=list(headers.items()), offset=0)
    return decode(record, SECRET, 2, now=now, max_age_s=MAX_AGE)  # type: ignore[arg-type]


def test_decode_accepts_a_fresh_signed_event() -> None:
    event = _decode(_signed())
    assert isinstance(event, Event) and event.created_at == NOW - 5


def test_an_old_signature_is_refused_as_expired_even_for_a_young_event() -> None:
    """A record copied off the broker and produced again later: its signature is too old."""
    old = _decode(_signed(created_at=NOW - 10, signed_at=NOW - MAX_AGE - 1))
    assert isinstance(old, Rejection) and old.reason.startswith("expired") and old.event_id == 7


def test_an_old_event_is_refused_as_expired_even_freshly_signed() -> None:
    old = _decode(_signed(created_at=NOW - MAX_AGE - 1, signed_at=NOW))
    assert isinstance(old, Rejection) and old.reason.startswith("expired")


def test_a_legit_republish_of_an_event_the_outbox_still_holds_is_accepted() -> None:
    """The relay re-drives a row up to outbox_retention_s after its creation, signed afresh."""
    assert isinstance(_decode(_signed(created_at=NOW - 7 * DAY, signed_at=NOW)), Event)


def test_a_replayed_record_with_a_new_created_at_fails_the_signature() -> None:
    h = _signed(created_at=NOW - 9 * DAY)
    moved = _decode({**h, "createdAt": str(NOW - 5).encode()})
    assert isinstance(moved, Rejection) and moved.reason.startswith("bad signature")


def test_a_message_signed_the_old_way_is_refused() -> None:
    """No signedAt: the signature cannot verify (parked as bad signature, never applied)."""
    h = {k: v for k, v in _signed().items() if k != "signedAt"}
    old = _decode(h)
    assert isinstance(old, Rejection) and old.reason.startswith("bad signature")
