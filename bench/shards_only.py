"""A stack for benches that measure a shard alone: both shards up, every other service stopped so
nothing competes with them for the two cores or drains their outboxes; taken down (purged) after.

    with shards_only() as backend:
        config = load_config(backend.paths.service_config("vm1"))
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology

SHARDS = ("shard1", "shard2")


@contextmanager
def shards_only(port_offset: int = 6000) -> Iterator[LocalBackend]:
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state", prometheus_enabled=False,
                        console_enabled=False).with_port_offset(port_offset)
        backend = LocalBackend(topo)
        backend.up(progress=lambda m: print(f"  {m}", file=sys.stderr))
        try:
            for s in backend.status():
                if s.name not in SHARDS:
                    backend.stop(s.name)
            yield backend
        finally:
            backend.down(purge=True)
