"""Settings are validated together when they are loaded: a value that silently turns a guarantee
off (idempotency, dedupe beyond the re-drive window) or makes a loop spin is refused, naming the
settings and the rule; `payctl up` then exits 2 before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from payflow.config import CLOCK_MARGIN_S, Settings


@pytest.mark.parametrize(("field", "value"), [
    ("idempotency_ttl_s", 0), ("idempotency_ttl_s", -5),
    ("prune_interval_s", 0), ("redrive_interval_s", 0), ("relay_poll_interval_s", 0),
    ("relay_batch_size", -1), ("relay_batch_size", 0), ("prune_batch", -3),
    ("db_pool_size", 0), ("ingest_db_timeout_s", 0), ("publish_timeout_s", -1),
    ("breaker_fail_max", 0), ("acquirer_failure_rate", 1.5), ("acquirer_latency_median_ms", -1),
    ("acquirer_latency_sigma", -0.1), ("acquirer_timeout_ms", 0), ("refund_concurrency", 0),
    ("refund_concurrency", 1025), ("refund_max_attempts", 0),
    ("outbox_retention_s", 0), ("processed_retention_s", -1), ("relay_max_retries", 0),
    ("parked_per_minute", 0), ("parked_per_minute", 100_001), ("parked_retention_s", 0),
])
def test_a_value_out_of_bounds_is_refused_naming_the_setting(field, value):
    with pytest.raises(ValidationError) as err:
        Settings(**{field: value})
    assert field in str(err.value)


def test_the_inbox_must_outlive_every_event_that_can_be_re_driven():
    """An event re-produced after its inbox row was pruned would be applied a second time."""
    with pytest.raises(ValidationError) as err:
        Settings(outbox_retention_s=3600, processed_retention_s=1800)
    text = str(err.value)
    assert "processed_retention_s" in text and "outbox_retention_s" in text and "relay_redrive_after_s" in text
    # consumers accept events up to halfway between the retentions (max_event_age_s); the re-drive
    # works up to that age less its window, so the half above it must hold the window again plus a
    # margin for clocks: the old minimum (a gap of the window alone) left 15 s
    with pytest.raises(ValidationError, match="processed_retention_s"):
        Settings(outbox_retention_s=3600, processed_retention_s=3600 + 31, relay_redrive_after_s=30)
    Settings(outbox_retention_s=3600, processed_retention_s=3600 + 2 * (30 + CLOCK_MARGIN_S),
             relay_redrive_after_s=30)


def test_backoff_bounds_are_ordered_and_consumers_are_known():
    with pytest.raises(ValidationError, match="relay_backoff_max_s"):
        Settings(relay_backoff_base_s=5, relay_backoff_max_s=1)
    with pytest.raises(ValidationError, match="consumers"):
        Settings(consumers=["ledger", "ledgre"])
    with pytest.raises(ValidationError, match="currencies"):
        Settings(currencies=["usd"])


def test_the_acquirer_timeout_is_above_its_median_and_a_refunds_worst_case_fits_a_poll() -> None:
    with pytest.raises(ValidationError, match=r"acquirer_timeout_ms .* acquirer_latency_median_ms"):
        Settings(acquirer_latency_median_ms=500, acquirer_timeout_ms=400)
    with pytest.raises(ValidationError, match="refund_max_attempts"):
        Settings(refund_max_attempts=20, acquirer_timeout_ms=15_000)
    Settings(acquirer_latency_median_ms=0, acquirer_timeout_ms=1)
    Settings(refund_max_attempts=10, acquirer_timeout_ms=10_000)


def test_the_defaults_hold_every_rule():
    Settings()


@pytest.mark.parametrize(("settings", "named"), [
    ("idempotency_ttl_s = 0\n", ["idempotency_ttl_s"]),
    ("outbox_retention_s = 600\nprocessed_retention_s = 60\n", ["processed_retention_s", "outbox_retention_s"]),
])
def test_up_refuses_bad_settings_with_exit_2_and_starts_nothing(tmp_path: Path, settings, named):
    config = tmp_path / "stack.toml"
    config.write_text(f'state_dir = "state"\n\n[settings]\n{settings}')
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(config), "up"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert all(name in out for name in named), out
    assert not (tmp_path / "state").exists()
