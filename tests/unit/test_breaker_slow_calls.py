"""Slow-call metrics of the kafka-publisher breaker: a publish slower than breaker_slow_call_s."""

from prometheus_client import REGISTRY

from payflow.config import Settings
from payflow.outbox.breaker import TrackedBreaker


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"name": "kafka-publisher", **labels})


def test_slow_calls_are_counted_per_kind_with_the_setting_as_threshold() -> None:
    assert Settings().breaker_slow_call_s == 0.5
    b = TrackedBreaker(fail_max=5, reset_timeout_s=1, success_threshold=1, window=10, slow_call_s=0.1)
    for seconds, ok in [(0.01, True), (0.2, True), (0.3, False), (0.05, False)]:
        b.record_call(ok, seconds)
    snap = b.snapshot()
    assert snap["numberOfSlowCalls"] == 2 and snap["slowCallRate"] == 50.0
    assert snap["slowCallDurationThresholdSeconds"] == 0.1
    assert _value("resilience4j_circuitbreaker_slow_call_rate") == 50.0
    assert _value("resilience4j_circuitbreaker_slow_calls", kind="successful") == 1
    assert _value("resilience4j_circuitbreaker_slow_calls", kind="failed") == 1
    assert _value("resilience4j_circuitbreaker_buffered_calls", kind="successful") == 2
    assert _value("resilience4j_circuitbreaker_buffered_calls", kind="failed") == 2
