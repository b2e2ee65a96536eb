"""`each_shard`, the seam every read-only command reads the shards through: with one shard down
the others still answer and the missing one is named with its reason and a hint about that shard
(not the whole stack); with none answering there is nothing to report, so the first error stands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from payctl.errors import EnvironmentProblem
from payctl.ops import partial
from payctl.stack.shards import ShardUnreachable
from payctl.stack.topology import Topology


def _down(monkeypatch: pytest.MonkeyPatch, *down: str) -> Topology:
    topo = Topology(state_dir=Path("/nonexistent"))

    @contextmanager
    def fake(t: Topology, vm: str) -> Iterator[Any]:
        shard = t.shard_name([v.name for v in t.vms].index(vm))
        if shard in down:
            raise ShardUnreachable(shard, f"cannot connect to {shard} on port 1: refused",
                                   "… or the stack with `payctl up`")
        yield object()

    monkeypatch.setattr(partial, "shard_connection", fake)
    return topo


def test_a_stopped_shard_is_named_with_a_hint_about_that_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    topo = _down(monkeypatch, "shard2")
    got = partial.each_shard(topo, lambda i, vm, _conn: (i, vm))
    assert got.answers == [(0, topo.vms[0].name)] and got.partial
    [u] = got.unavailable
    assert (u.shard, u.vm) == ("shard2", topo.vms[1].name) and "cannot connect to shard2" in u.reason
    assert u.hint is not None and "payctl start shard2" in u.hint and "payctl up" not in u.hint
    assert u.to_json() == {"vm": u.vm, "shard": "shard2", "available": False, "error": u.reason, "hint": u.hint}
    assert "shard2 unavailable: cannot connect" in u.line()
    with pytest.raises(EnvironmentProblem, match="cannot connect to shard2"):
        got.complete()


def test_every_shard_answering_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    got = partial.each_shard(_down(monkeypatch), lambda i, _vm, _conn: i)
    assert not got.partial and got.complete() == [0, 1]


def test_no_shard_answering_is_the_first_error_with_its_own_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    topo = _down(monkeypatch, "shard1", "shard2")
    with pytest.raises(ShardUnreachable, match="cannot connect to shard1") as err:
        partial.each_shard(topo, lambda i, _vm, _conn: i)
    assert err.value.hint is not None and "payctl up" in err.value.hint
