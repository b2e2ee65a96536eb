"""Metric labels come from closed sets: a request with a made-up method or path must not create a
new series (each series is memory in every ingest worker and in Prometheus, forever)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from payflow.config import PlatformConfig, ShardConfig
from payflow.ingest import metrics
from payflow.ingest.app import create_app
from payflow.ingest.service import PaymentService


def _series_labels(name: str) -> set[tuple[tuple[str, str], ...]]:
    found = set()
    for family in metrics.HTTP_SECONDS.collect():
        for sample in family.samples:
            if sample.name == f"{name}_count":
                found.add(tuple(sorted(sample.labels.items())))
    return found


def test_made_up_methods_and_paths_share_closed_label_values(tmp_path: Path) -> None:
    shard = ShardConfig(index=0, name="shard1", port=1, database="d", user="u", password_file=tmp_path / "pw")
    config = PlatformConfig(vm="labels", shard_index=0, shards=[shard], bootstrap_servers="127.0.0.1:1",
                            ingest_port=1, relay_port=2, ledger_port=3, refund_port=4, settlement_port=5)
    client = create_app(config, service=cast(PaymentService, object())).test_client()
    for i in range(40):
        client.open(f"/no/such/path/{i}", method=f"BREW{i}")
        client.open(f"/payments/{i}/x", method="GET")
    labels = [dict(series) for series in _series_labels("http_server_requests_seconds")
              if dict(series)["instance"] == "ingest-labels"]
    methods = {series["method"] for series in labels}
    uris = {series["uri"] for series in labels}
    assert methods <= metrics.HTTP_METHODS | {"OTHER"}, methods
    assert len(uris) <= 2, uris  # unknown paths collapse into one templated value
    assert len(labels) <= 4, labels
