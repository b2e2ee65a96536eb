"""The fault experiments as data: the new probes and actions validate precisely (errors name the
entry), every shipped experiment runs under a `load_rate` background load, steady-state probes
with `wait_s` retry until they hold, and the pure parts of load results and poison records."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from payctl.chaos import engine
from payctl.chaos.kinds import ArmFaultAction, BackgroundLoadAction, InjectPoisonAction
from payctl.chaos.load import Sample, summarize
from payctl.chaos.model import load_experiment
from payctl.chaos.poison import poison_records
from payctl.chaos.runner import experiment_path, list_experiments
from payctl.errors import UsageError
from tests.chaos.test_engine import FakeDriver, experiment

NEW = ("shard-hang", "kafka-outage-long", "broker-restart", "broker-lost-log", "relay-crash", "poison-event")


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    return f


def test_the_new_experiments_ship_and_validate():
    names = {e["name"] for e in list_experiments()}
    assert set(NEW) <= names


@pytest.mark.parametrize("name", [e["name"] for e in list_experiments()])
def test_every_experiment_runs_under_a_load_rate_background_load(name):
    exp, variables = load_experiment(experiment_path(name))
    assert float(variables["load_rate"]) >= 100
    loads = [a for a in exp.method if isinstance(a, BackgroundLoadAction)]
    assert loads and all(a.rate == variables["load_rate"] for a in loads)
    low, _ = load_experiment(experiment_path(name), {"load_rate": 20})
    assert all(a.rate == 20 for a in low.method if isinstance(a, BackgroundLoadAction))


def test_kafka_outage_long_takes_its_outage_from_a_variable():
    exp, variables = load_experiment(experiment_path("kafka-outage-long"), {"outage_s": 7})
    assert variables["outage_s"] == 7
    outage = next(a for a in exp.method if a.id == "outage")
    assert outage.seconds == 7
    assert load_experiment(experiment_path("kafka-outage-long"))[1]["outage_s"] == 300


def test_relay_crash_and_poison_use_the_new_actions():
    relay, _ = load_experiment(experiment_path("relay-crash"))
    arm = next(a for a in relay.method if isinstance(a, ArmFaultAction))
    assert (arm.service, arm.point) == ("relay-vm1", "crash-after-publish")
    poison, _ = load_experiment(experiment_path("poison-event"), {"poison_count": 3})
    inject = next(a for a in poison.method if isinstance(a, InjectPoisonAction))
    assert (inject.topic, inject.count) == ("payment.authorized", 3)


def test_ingest_slow_arms_a_delay_from_its_variable():
    slow, _ = load_experiment(experiment_path("ingest-slow"), {"delay_ms": 250})
    arm = next(a for a in slow.method if isinstance(a, ArmFaultAction))
    assert (arm.service, arm.point, arm.delay_ms) == ("ingest-vm1", "slow-requests", 250)


@pytest.mark.parametrize(("name", "point", "variable"), [("acquirer-slow", "slow-acquirer", "median_ms"),
                                                        ("acquirer-outage", "acquirer-outage", "fail_after_ms")])
def test_acquirer_experiments_fault_every_refund_worker_under_a_load_that_refunds(name, point, variable):
    exp, _ = load_experiment(experiment_path(name), {variable: 1234, "fault_s": 7})
    arms = [a for a in exp.method if isinstance(a, ArmFaultAction)]
    assert sorted((a.service, a.point, a.delay_ms) for a in arms) == [("refund-vm1", point, 1234),
                                                                      ("refund-vm2", point, 1234)]
    disarms = [a for a in [*exp.method, *exp.rollbacks] if a.type == "disarm_fault"]
    assert sorted(a.service for a in disarms) == ["refund-vm1", "refund-vm1", "refund-vm2", "refund-vm2"]
    assert any(getattr(a, "seconds", None) == 7 for a in exp.method)
    loads = [a for a in exp.method if isinstance(a, BackgroundLoadAction)]
    assert loads and all(a.flow == "full" for a in loads)  # authorize → capture → refund
    verified = {p.type for p in exp.verify}
    assert {"refunds_settled", "reconcile_clean", "ledger_balanced"} <= verified


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("- {type: arm_fault, service: relay-vm1}", r"method\[0\]\.point: Field required"),
        ("- {type: arm_fault, service: relay-vm1, point: explode}", r"method\[0\]\.point: Input should be "
                                                                    r"'crash-after-publish'"),
        ("- {type: arm_fault, service: ledger-vm1, point: crash-after-publish}",
         r"method\[0\]: .*exists only in relay-\* services, not 'ledger-vm1'"),
        ("- {type: arm_fault, service: ../etc, point: crash-after-publish}", r"method\[0\]\.service: String should"),
        ("- {type: arm_fault, service: ingest-vm1, point: slow-requests}",
         r"method\[0\]: .*delay_ms is required for 'slow-requests'"),
        ("- {type: arm_fault, service: relay-vm1, point: crash-after-publish, delay_ms: 5}",
         r"method\[0\]: .*delay_ms applies only to acquirer-outage, slow-acquirer, slow-requests, "
         r"not 'crash-after-publish'"),
        ("- {type: arm_fault, service: ingest-vm1, point: slow-acquirer, delay_ms: 2500}",
         r"method\[0\]: .*exists only in refund-\* services, not 'ingest-vm1'"),
        ("- {type: arm_fault, service: refund-vm1, point: acquirer-outage}",
         r"method\[0\]: .*delay_ms is required for 'acquirer-outage'"),
        ("- {type: background_load, id: l, rate: 5, flow: refunds}", r"method\[0\]\.flow: Input should be"),
        ("- {type: arm_fault, service: relay-vm1, point: slow-requests, delay_ms: 5}",
         r"method\[0\]: .*exists only in ingest-\* services, not 'relay-vm1'"),
        ("- {type: arm_fault, service: ingest-vm1, point: slow-requests, delay_ms: 0}",
         r"method\[0\]\.delay_ms: Input should be greater than or equal to 1"),
        ("- {type: inject_poison, id: p, topic: payment.nope}", r"method\[0\]\.topic: .*unknown topic 'payment.nope'"),
        ("- {type: inject_poison, id: p, count: 0}", r"method\[0\]\.count: Input should be greater than or equal"),
        ("- {type: inject_poison}", r"method\[0\]\.id: Field required"),
        ("- {type: lose_logs, topic: payment.authorized}", r"method\[0\]\.topic: Extra inputs are not permitted"),
        ("- {type: wait, seconds: 1}\n- {type: disarm_fault, point: crash-after-publish}",
         r"method\[1\]\.service: Field required"),
        ("- {type: background_load, id: l, rate: 0}", r"method\[0\]\.rate: Input should be greater than 0"),
    ],
)
def test_bad_new_actions_name_the_entry(tmp_path, method, error):
    with pytest.raises(UsageError, match=error):
        load_experiment(write(tmp_path, f"title: x\nmethod:\n{method}\n"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("steady_state:\n  - {type: outbox_pending, wait_s: -1}\n", r"steady_state\[0\]\.wait_s: Input should be"),
        ("steady_state:\n  - {type: outbox_pending, wait_interval_s: 0}\n",
         r"steady_state\[0\]\.wait_interval_s: Input should be greater than 0"),
        ("verify:\n  - {type: parked_messages}\n", r"verify\[0\]\.tolerance: Field required"),
        ("verify:\n  - {type: parked_messages, since: nope, tolerance: 1}\n",
         r"verify\[0\]\.since: 'nope' is not an inject_poison action id"),
        ("verify:\n  - {type: fault_armed, service: relay-vm1}\n", r"verify\[0\]\.point: Field required"),
        ("verify:\n  - {type: load_results, load: l, window: [a, zz], tolerance: {}}\n",
         r"verify\[0\]\.window: unknown activity id 'zz'"),
        ("verify:\n  - {type: load_results, load: nope, tolerance: {}}\n",
         r"verify\[0\]\.load: unknown background load 'nope'"),
        ("verify:\n  - {type: breaker_transitions, down: a, up: nope}\n", r"verify\[0\]\.up: unknown activity id"),
    ],
)
def test_bad_new_probes_name_the_entry(tmp_path, text, error):
    base = "title: x\nmethod:\n  - {id: a, type: wait, seconds: 0}\n  - {id: l, type: background_load, rate: 1}\n"
    with pytest.raises(UsageError, match=error):
        load_experiment(write(tmp_path, base + text))


def test_wait_s_inside_wait_until_is_rejected(tmp_path):
    f = write(tmp_path, "title: x\nmethod:\n  - {type: wait, seconds: 0}\n"
                        "  - {type: wait_until, timeout_s: 1, probe: {type: outbox_pending, wait_s: 5}}\n")
    with pytest.raises(UsageError, match=r"method\[1\]\.probe\.wait_s: not allowed inside wait_until"):
        load_experiment(f)


# -- wait-until steady state -------------------------------------------------------------------
def counting_down(start: int):
    left = [start]

    def value() -> int:
        left[0] = max(0, left[0] - 1)
        return left[0]

    return value


def test_steady_state_probe_with_wait_s_retries_until_it_holds():
    driver = FakeDriver(probes={"outbox_pending": counting_down(4)})
    exp = experiment(steady_state=[{"type": "outbox_pending", "wait_s": 5, "wait_interval_s": 0.01}])
    journal = engine.run(exp, driver)
    assert journal.status == "completed", journal.reason
    before = journal.steady_state_before[0]
    assert before.status == "succeeded" and before.output == 0 and before.waited_s is not None


def test_steady_state_probe_with_wait_s_gives_up_after_the_timeout():
    driver = FakeDriver(probes={"outbox_pending": 7})
    exp = experiment(steady_state=[{"type": "outbox_pending", "wait_s": 0.2, "wait_interval_s": 0.05}])
    started = time.monotonic()
    journal = engine.run(exp, driver)
    assert 0.2 <= time.monotonic() - started < 2
    assert journal.status == "aborted" and driver.actions == []
    assert journal.steady_state_before[0].output == 7 and journal.steady_state_before[0].waited_s >= 0.2


def test_without_wait_s_a_probe_is_checked_once():
    calls = []
    driver = FakeDriver(probes={"outbox_pending": lambda: calls.append(1) or 3})
    journal = engine.run(experiment(), driver)
    assert journal.status == "aborted" and calls == [1]
    assert journal.steady_state_before[0].waited_s is None


def test_a_probe_that_raises_is_retried_within_wait_s():
    attempts = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("shard not answering")
        return 0

    driver = FakeDriver(probes={"outbox_pending": flaky})
    exp = experiment(steady_state=[{"type": "outbox_pending", "wait_s": 5, "wait_interval_s": 0.01}])
    journal = engine.run(exp, driver)
    assert journal.status == "completed" and journal.steady_state_before[0].output == 0
    assert len(attempts) == 3 + 2  # three before the run, once after it, once after the rollbacks


# -- pure cores --------------------------------------------------------------------------------
def test_load_results_in_a_window_and_non_503_failures():
    samples = [Sample(1.0, "even", 200, 5), Sample(1.0, "odd", 200, 5),
               Sample(2.0, "even", 200, 5), Sample(2.0, "odd", 503, 40), Sample(2.5, "odd", 0, 10000),
               Sample(3.0, "even", 500, 5), Sample(4.0, "odd", 200, 5)]
    window = summarize([s for s in samples if 2.0 <= s.at <= 3.0])
    assert window["sent"] == 4
    assert window["even"]["success_rate"] == 0.5 and window["odd"]["statuses"] == {"503": 1, "0": 1}
    assert window["odd"]["non_503_failures"] == 1 and window["even"]["non_503_failures"] == 1
    assert summarize([])["even"]["success_rate"] is None


def test_outcome_unknown_is_counted_apart_from_other_failures():
    """A 504 OUTCOME_UNKNOWN (a shard lost mid-COMMIT) is explicit, like the 503; anything else
    (transport errors, 500s, HAProxy's own errors) is an `other_failure`."""
    samples = [Sample(1.0, "odd", 503, 5), Sample(1.0, "odd", 504, 800), Sample(1.0, "odd", 0, 10000),
               Sample(1.0, "odd", 502, 5), Sample(1.0, "even", 200, 5)]
    odd = summarize(samples)["odd"]
    assert odd["outcome_unknown"] == 1 and odd["other_failures"] == 2 and odd["non_503_failures"] == 3


def test_poison_records_cover_every_partition_and_are_never_valid_events():
    records = poison_records("payment.authorized", 9, [3, 0, 2, 1], tag="t")
    assert len(records) == 9 and [r.partition for r in records[:4]] == [0, 1, 2, 3]
    assert all(r.topic == "payment.authorized" for r in records)
    assert len({r.key for r in records}) == 9
    undecodable = [r for r in records[::2]]
    assert all(r.value.startswith(b"\x00\xff") and not r.headers for r in undecodable)
    unsigned = records[1::2]
    assert all(dict(r.headers).keys() >= {"eventId", "eventType"} and "signature" not in dict(r.headers)
               for r in unsigned)
    with pytest.raises(ValueError, match="no partitions"):
        poison_records("payment.authorized", 1, [], tag="t")


def test_the_fault_point_type_and_the_hook_table_name_the_same_points():
    import typing

    from payctl.chaos.kinds import FAULT_HOOKS, FaultPoint

    assert set(typing.get_args(FaultPoint)) == set(FAULT_HOOKS)


def test_a_full_flow_load_authorizes_captures_and_refunds_each_payment():
    import httpx

    from payctl.chaos.load import LoadGenerator

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/authorize"):
            return httpx.Response(200, json={"paymentId": 41, "status": "AUTHORIZED"})
        return httpx.Response(200, json={"paymentId": 41})

    gen = LoadGenerator("http://gw/api", rate=50, duration_s=0.05, flow="full", transport=httpx.MockTransport(answer))
    gen.start()
    gen.wait()
    stats = gen.stop()
    payments = seen.count("/api/payments/authorize")
    assert payments >= 1
    assert seen.count("/api/payments/capture/41") == payments
    assert seen.count("/api/payments/refund/41") == payments
    assert stats["sent"] == 3 * payments and stats["failures"] == 0
    assert gen.stats()["refunds_requested"] == payments


def test_a_full_flow_stops_at_the_first_refused_step():
    import httpx

    from payctl.chaos.load import LoadGenerator

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/authorize"):
            return httpx.Response(200, json={"paymentId": 7})
        return httpx.Response(503, json={"code": "SHARD_UNAVAILABLE"})

    gen = LoadGenerator("http://gw/api", rate=20, duration_s=0.01, flow="full", transport=httpx.MockTransport(answer))
    gen.start()
    gen.wait()
    stats = gen.stop()
    assert not any("/refund/" in p for p in seen)
    assert stats["failures"] == seen.count("/api/payments/capture/7") >= 1 and stats["refunds_requested"] == 0
