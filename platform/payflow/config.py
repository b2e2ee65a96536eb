"""Runtime settings of one VM's services, written by payctl as JSON (path in $PAYFLOW_CONFIG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ShardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)
    name: str
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    # The shard's Unix socket, when it runs on this machine and no network fault may be put between
    # the two: used instead of host:port. Measured (bench/bench_round_trips.py, the authorize
    # transaction over the socket and over loopback TCP): 10-14 % less CPU in the client and
    # 16-18 % less in MariaDB.
    unix_socket: Path | None = None
    database: str
    user: str
    password_file: Path

    def password(self) -> str:
        return self.password_file.read_text().strip()


KNOWN_CONSUMERS = ("ledger", "refund", "settlement")
# The longest one refund may take with every call timing out (see Settings._rules_between_settings).
REFUND_WORST_CASE_S = 240.0


# Room for clocks (a consumer's host against the shard's) and for a deferred event's wait, on top of
# the re-drive window, between the consumers' age limit and the inbox's retention.
CLOCK_MARGIN_S = 60.0


class Settings(BaseModel):
    """Tunables; chaos runs shorten the breaker timings."""

    model_config = ConfigDict(extra="forbid")
    currencies: list[str] = Field(default_factory=lambda: ["KRW", "USD", "EUR", "JPY"])
    max_body_bytes: int = Field(default=16 * 1024, ge=256, le=16 * 1024 * 1024)
    db_connect_timeout_s: float = Field(default=0.5, gt=0, le=60)
    # Every platform connection has read/write timeouts (db.pool): a hung shard fails calls instead of
    # blocking the worker that made them. The ingest's are short (a 503 within 1 s); workers' longer.
    db_read_timeout_s: float = Field(default=5.0, gt=0, le=600)
    db_write_timeout_s: float = Field(default=5.0, gt=0, le=600)
    ingest_db_timeout_s: float = Field(default=0.8, gt=0, le=60)
    # Per-shard breaker in the ingest: after a shard fails, its merchants get 503 at once for this
    # long, then one trial request at a time finds out whether it is back.
    shard_open_s: float = Field(default=1.0, gt=0, le=600)
    db_pool_size: int = Field(default=8, ge=1, le=200)
    shard_retry_after_s: int = Field(default=2, ge=1, le=3600)
    breaker_fail_max: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    breaker_success_threshold: int = Field(default=3, ge=1)
    breaker_slow_call_s: float = Field(default=0.5, gt=0)  # a publish slower than this is a slow call
    publish_timeout_s: float = Field(default=2.0, gt=0, le=300)
    # 0 would make the relay's loop spin on an idle shard. 0.2 s, not less: each poll publishes one
    # batch per partition it touches, and the local broker's CPU grows with the batches it stores
    # (bench_broker_growth.py); at 175 full-flow it/s, 0.2 s against 0.05 s took 0.67x the broker's
    # CPU, 0.47x the HTTP p95 and 0.60-0.70x every stage's lag (bench_relay_cadence.py, RESULTS.md).
    relay_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    relay_batch_size: int = Field(default=200, ge=1, le=10_000)
    relay_max_retries: int = Field(default=12, ge=1)
    relay_backoff_base_s: float = Field(default=0.5, gt=0)
    relay_backoff_max_s: float = Field(default=30.0, gt=0)
    relay_redrive_after_s: float = Field(default=30.0, gt=0)
    consumer_commit_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # Offsets are committed at most this often (0: after every poll). A commit per poll was ~5 % of
    # a consumer's CPU and one more broker request per poll; what a crash redelivers in between is
    # skipped by processed_event. A graceful stop commits what was handled.
    consumer_commit_interval_s: float = Field(default=0.5, ge=0, le=10)
    # How long the broker may hold a consumer's fetch open waiting for data. The local broker does
    # not answer a fetch early when data arrives, so this puts a floor under every event's lag:
    # measured at 300 events/s, the consumer hop's p95 was ~240 ms with aiokafka's 500 ms default,
    # ~54 ms with 100 ms. Shorter costs idle fetches: with 100 ms the broker and the six consumers
    # burned ~5 % of a core more at rest than with 500 ms. 200 ms is the trade (hop p95 ~100 ms).
    consumer_fetch_wait_s: float = Field(default=0.2, gt=0, le=5)
    # ...and until this much data is there (or the wait runs out). With aiokafka's 1 byte a busy
    # consumer got a fetch answer with a few records ~28 times a second, each paying a fetch request,
    # a pass of the loop and a transaction per shard; 4 KB: ~9 a second at the same hop latency
    # (tansu, 300 events/s: p95 109 vs 105 ms); bigger adds latency (16 KB: p95 159 ms).
    consumer_fetch_min_bytes: int = Field(default=4096, ge=1, le=1024 * 1024)
    # A member whose position stays above the log's end (fetch answers' high-water mark) this long
    # reads the partition again: the broker lost the log but kept the group, and answers such
    # fetches with nothing instead of "out of range" (payflow.consumers.offsets.LogEndWatch). The
    # local broker (tansu) does; Kafka does not, and there a mark that lags after a leader change
    # must not send members back over a log older than processed_retention_s: None turns it off,
    # and payctl does so for a real Kafka unless the setting is given.
    consumer_log_lost_grace_s: float | None = Field(default=2.0, gt=0, le=60)
    consumer_max_attempts: int = Field(default=3, ge=1)
    consumer_max_deferred: int = Field(default=20000, ge=1)
    # Retention (Stripe keeps idempotency keys 24 h); pruning runs in small batches. A TTL of 0
    # would turn idempotency off: at least a minute. The inbox (processed_event) outlives every
    # event the relay can still re-drive by the re-drive window and a margin (checked below): such
    # an event always finds its dedupe row.
    idempotency_ttl_s: float = Field(default=24 * 3600.0, ge=60)
    outbox_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    processed_retention_s: float = Field(default=8 * 24 * 3600.0, gt=0)
    # The acquirer's record of a refund is kept while a redelivered refund event could still ask
    # for it: its request must be final, and the row older than the inbox's retention (checked below).
    acquirer_refund_retention_s: float = Field(default=9 * 24 * 3600.0, gt=0)
    # A consumer group member's progress row that has not been written for this long belongs to a
    # member that is gone (the re-drive ignores rows older than two minutes already).
    progress_retention_s: float = Field(default=7 * 24 * 3600.0, ge=600, le=365 * 24 * 3600)
    # Pruning keeps pace with the insert rate: a pass deletes batch after batch (each its own short
    # transaction, `prune_pause_s` apart so foreground writes get the locks and the log in between)
    # until every table has fewer expired rows than a batch, or its time budget is spent; a pass
    # that ran out of budget is followed by another after a pause instead of `prune_interval_s`.
    # Batches start at `prune_batch` rows and grow up to `prune_batch_max` while they stay quick.
    prune_batch: int = Field(default=500, ge=1, le=100_000)
    prune_batch_max: int = Field(default=5000, ge=1, le=100_000)
    # Parked messages: kept this long (replayed ones for an hour), and a flood of forged ones is
    # stored at most this many per consumer and topic per minute (each member), the rest counted.
    parked_retention_s: float = Field(default=30 * 24 * 3600.0, gt=0)
    parked_per_minute: int = Field(default=60, ge=1, le=100_000)
    prune_interval_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    prune_pass_budget_s: float = Field(default=20.0, gt=0, le=600)
    prune_pause_s: float = Field(default=0.02, ge=0, le=10)
    # The simulated acquirer (payflow.consumers.acquirer), as slow and unreliable as a real one: each
    # call's latency is log-normal with this median and sigma (0.5: p99 ~3.2 times the median), the
    # caller gives up after the timeout (the refund is then in doubt and looked up by its key), and
    # this share of calls fails without executing (retried with the same key, at most
    # refund_max_attempts calls per refund). Test stacks shorten the latency.
    acquirer_latency_median_ms: float = Field(default=200.0, ge=0, le=60_000)
    acquirer_latency_sigma: float = Field(default=0.5, ge=0, le=3)
    acquirer_timeout_ms: int = Field(default=3000, ge=1, le=120_000)
    acquirer_failure_rate: float = Field(default=0.01, ge=0, le=1)
    refund_max_attempts: int = Field(default=5, ge=1, le=100)
    # Acquirer calls a refund worker keeps in flight (refunds of different payments; one payment's
    # refunds go one after another). Throughput is about this many / the latency: 64 at 200 ms is
    # ~300 refunds/s per worker, where one at a time was ~5. Each call is a thread that sleeps
    # while it waits; the shard connections are shared (8 per shard at most).
    refund_concurrency: int = Field(default=64, ge=1, le=1024)
    # Groups of refunds a worker keeps in flight side by side, a new one as records arrive: a group
    # commits once its slowest call is answered, so with one group every refund read meanwhile
    # waited for it. Each holds a transaction (a connection) per shard while its calls are out.
    refund_groups_in_flight: int = Field(default=8, ge=1, le=64)
    consumers: list[str] = Field(default_factory=lambda: list(KNOWN_CONSUMERS))
    redrive_interval_s: float = Field(default=5.0, gt=0, le=3600)
    breaker_enabled: bool = True
    # Merchant authentication (DESIGN §3). "off" exists only to run the original platform's
    # unmodified k6 scripts, and payctl refuses it unless the gateway listens on loopback.
    api_auth: Literal["on", "off"] = "on"
    # How long an ingest process trusts the keys it read for a merchant: a revocation (or a rotation
    # grace ending) takes effect within this time. Each process reads a merchant's keys at most once
    # per period while the keys it holds answer; a key it does not hold is looked up again after
    # api_key_refresh_s (a key issued a moment ago works at once).
    api_key_cache_ttl_s: float = Field(default=30.0, ge=1, le=300)
    api_key_refresh_s: float = Field(default=1.0, ge=0.1, le=60)
    api_key_cache_merchants: int = Field(default=100_000, ge=100, le=10_000_000)
    # After a rotation the replaced keys stay valid this long, so clients can switch over.
    api_key_grace_s: float = Field(default=24 * 3600.0, ge=0, le=30 * 24 * 3600)
    # Failed authentications per source address: more than `auth_fail_limit` in a window of
    # `auth_fail_window_s` answers 429 until the window ends. At most `auth_fail_sources`
    # addresses are tracked per process (the oldest forgotten first): memory stays bounded.
    auth_fail_limit: int = Field(default=20, ge=1, le=100_000)
    auth_fail_window_s: float = Field(default=10.0, ge=1, le=3600)
    auth_fail_sources: int = Field(default=4096, ge=16, le=1_000_000)
    # Peers whose X-Forwarded-For names the client (the gateway; it overwrites the header). Any
    # other peer is itself the source address.
    auth_trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"], max_length=64)

    @field_validator("currencies")
    @classmethod
    def _iso_currencies(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not (len(c) == 3 and c.isascii() and c.isalpha() and c.isupper())]
        if not value or bad:
            raise ValueError(f"currencies must be ISO 4217 upper-case codes (got {bad or 'none'})")
        return value

    @field_validator("consumers")
    @classmethod
    def _known_consumers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KNOWN_CONSUMERS))
        if unknown or len(set(value)) != len(value):
            raise ValueError(f"consumers must be distinct names from {', '.join(KNOWN_CONSUMERS)}"
                             f"{f' (unknown: {unknown})' if unknown else ' (listed twice)'}")
        return value

    @model_validator(mode="after")
    def _rules_between_settings(self) -> Self:
        """Combinations that silently turn a guarantee off."""
        # Consumers accept an event up to halfway between the two retentions (max_event_age_s) and the
        # outbox keeps (and re-drives) a row a consumer lacks up to that age: the half above it must
        # hold the re-drive window and a margin for clocks and deferrals, or a re-driven event could
        # outlive the inbox row of a consumer that applied it at once.
        window = self.outbox_retention_s + 2 * (self.relay_redrive_after_s + CLOCK_MARGIN_S)
        if self.processed_retention_s < window:
            raise ValueError(
                f"processed_retention_s ({self.processed_retention_s:g} s) must be at least outbox_retention_s + "
                f"2 × (relay_redrive_after_s + {CLOCK_MARGIN_S:g} s) ({window:g} s): an event re-driven after "
                "its inbox row was pruned would be applied twice")
        if self.acquirer_refund_retention_s < self.processed_retention_s:
            raise ValueError(
                f"acquirer_refund_retention_s ({self.acquirer_refund_retention_s:g} s) must be at least "
                f"processed_retention_s ({self.processed_retention_s:g} s): a refund event redelivered while "
                "its inbox row is kept would find no record of the refund and execute it again")
        if self.prune_batch_max < self.prune_batch:
            raise ValueError(f"prune_batch_max ({self.prune_batch_max}) must be at least prune_batch "
                             f"({self.prune_batch})")
        if self.api_key_refresh_s > self.api_key_cache_ttl_s:
            raise ValueError(f"api_key_refresh_s ({self.api_key_refresh_s:g}) must be at most api_key_cache_ttl_s "
                             f"({self.api_key_cache_ttl_s:g})")
        if self.acquirer_timeout_ms <= self.acquirer_latency_median_ms:
            raise ValueError(f"acquirer_timeout_ms ({self.acquirer_timeout_ms}) must be above "
                             f"acquirer_latency_median_ms ({self.acquirer_latency_median_ms:g}): most refund calls "
                             "would time out")
        # A refund's worst case (every call timing out, plus the back-offs of at most 1 s between
        # them) is spent inside one poll of the refund worker, which the consumer group expels after
        # aiokafka's max_poll_interval (300 s): stay below it.
        worst = self.refund_max_attempts * (self.acquirer_timeout_ms / 1000 + 1)
        if worst > REFUND_WORST_CASE_S:
            raise ValueError(f"refund_max_attempts × (acquirer_timeout_ms + 1 s back-off) ({worst:g} s) must be at "
                             f"most {REFUND_WORST_CASE_S:g} s: a refund that long would stall its worker's poll "
                             "until the consumer group expels it")
        if self.relay_backoff_max_s < self.relay_backoff_base_s:
            raise ValueError(f"relay_backoff_max_s ({self.relay_backoff_max_s:g}) must be at least "
                             f"relay_backoff_base_s ({self.relay_backoff_base_s:g})")
        return self


class PlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: str
    shard_index: int
    shards: list[ShardConfig]
    bootstrap_servers: str
    ingest_port: int
    relay_port: int
    ledger_port: int
    refund_port: int
    settlement_port: int
    # The VM's address: every service of the VM listens on it (127.0.0.1 unless the topology gives
    # the VM its own address: a network namespace or a real host).
    bind_host: str = "127.0.0.1"
    settings: Settings = Field(default_factory=Settings)
    # HMAC key the relay signs events with and consumers verify; None only where a deployment has
    # not provisioned one (the services then log loudly that events are not authenticated).
    event_secret_file: Path | None = None
    # Where chaos experiments arm fault hooks (payflow.common.faults); None: hooks disabled.
    fault_dir: Path | None = None

    def event_secret(self) -> bytes | None:
        if self.event_secret_file is None:
            return None
        return self.event_secret_file.read_text().strip().encode()

    @property
    def shard_count(self) -> int:
        return len(self.shards)

    @property
    def local_shard(self) -> ShardConfig:
        return self.shards[self.shard_index]


def load_config(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    source = path or os.environ.get("PAYFLOW_CONFIG")
    if not source:
        raise RuntimeError("PAYFLOW_CONFIG is not set: payctl writes it when it starts a service")
    return PlatformConfig.model_validate_json(Path(source).read_text())
