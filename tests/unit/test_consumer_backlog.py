"""A consumer member's backlog: log end minus what it handled, per partition, summed; partitions
it knows nothing about yet are left out, and a member ahead of a log end counts 0, never less."""

from __future__ import annotations

from payflow.consumers import metrics
from payflow.consumers.progress import backlog_records


def test_the_backlog_sums_what_each_partition_has_not_handled():
    assert backlog_records([(120, 100), (50, 50), (10, 30)]) == 20
    assert backlog_records([(None, 10), (40, None), (7, 2)]) == 5
    assert backlog_records([]) == 0


def test_every_consumer_exports_its_backlog():
    m = metrics.ConsumerMetrics("refund")
    m.backlog.set(7)
    assert metrics.BACKLOG.labels("refund")._value.get() == 7
