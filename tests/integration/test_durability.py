"""A payment answered 200 is on disk: every shard fsyncs its redo log at each COMMIT and writes
pages through the doublewrite buffer. A SIGKILL of mariadbd cannot tell this apart from a 1-per-second
flush (the OS keeps what was written); a power loss can, so the running server's own settings are
what this checks."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shard", [0, 1])
def test_every_shard_fsyncs_each_commit(stack, shard):
    (row,) = stack.query(shard, "SELECT @@innodb_flush_log_at_trx_commit, @@innodb_doublewrite, @@sync_binlog,"
                                " @@log_bin")
    flush, doublewrite, _sync_binlog, log_bin = row
    assert int(flush) == 1, "COMMIT must fsync the redo log (innodb_flush_log_at_trx_commit=1)"
    assert int(doublewrite) >= 1, "torn pages after a power loss need the doublewrite buffer"
    assert int(log_bin) == 0  # no binlog: InnoDB's redo log alone decides what is committed
