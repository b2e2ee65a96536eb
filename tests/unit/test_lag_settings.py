"""What bounds an event's lag when nothing is wrong: the relay's poll cadence and how long the
broker may hold a consumer's fetch. Both are settings; these pin how they are applied."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from payflow.config import Settings
from payflow.kafka.clients import make_consumer
from payflow.outbox.relay import pause_after_tick


def test_relay_keeps_a_fixed_cadence_instead_of_adding_the_tick_to_every_wait():
    # a partial batch that took 30 ms of a 50 ms interval waits only the remaining 20 ms
    assert pause_after_tick(leased=10, batch_size=200, interval_s=0.05, tick_s=0.03) == pytest.approx(0.02)
    # a tick longer than the interval: poll again at once (rows arrived meanwhile)
    assert pause_after_tick(leased=10, batch_size=200, interval_s=0.05, tick_s=0.08) == 0.0
    # a full batch: more is due now
    assert pause_after_tick(leased=200, batch_size=200, interval_s=0.05, tick_s=0.001) == 0.0
    # nothing to do: the whole interval
    assert pause_after_tick(leased=0, batch_size=200, interval_s=0.05, tick_s=0.0) == pytest.approx(0.05)


def test_consumer_fetch_wait_comes_from_settings():
    # aiokafka's default (500 ms) put ~240 ms of p95 lag into the consumer hop with the local broker
    assert Settings().consumer_fetch_wait_s <= 0.2

    async def build() -> tuple[int, int]:
        consumer = make_consumer("127.0.0.1:1", "g", ["payment.authorized"], fetch_wait_s=0.05, fetch_min_bytes=2048)
        # the options have no public getter
        return int(consumer._fetch_max_wait_ms), int(consumer._fetch_min_bytes)

    assert asyncio.run(build()) == (50, 2048)


def test_consumer_fetch_wait_must_be_positive_and_bounded():
    with pytest.raises(ValidationError, match="consumer_fetch_wait_s"):
        Settings(consumer_fetch_wait_s=0)
    with pytest.raises(ValidationError, match="consumer_fetch_wait_s"):
        Settings(consumer_fetch_wait_s=60)


def test_consumer_fetch_min_bytes_is_bounded():
    assert Settings().consumer_fetch_min_bytes == 4096
    with pytest.raises(ValidationError, match="consumer_fetch_min_bytes"):
        Settings(consumer_fetch_min_bytes=0)
    with pytest.raises(ValidationError, match="consumer_fetch_min_bytes"):
        Settings(consumer_fetch_min_bytes=10 * 1024 * 1024)
