"""A whole stack of its own for a bench: in a temporary folder, at a port offset clear of a user's
stack, removed with its data when the bench ends (whatever way it ends)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from payctl.stack.local import LocalBackend
from payctl.stack.probes import gateway_servers
from payctl.stack.topology import Topology


@contextmanager
def temp_stack(port_offset: int) -> Iterator[tuple[LocalBackend, Path]]:
    """The running backend and a scratch folder beside its state (for reports)."""
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state").with_port_offset(port_offset))
        backend.up()
        try:
            yield backend, Path(tmp)
        finally:
            backend.down(purge=True)


def use_gateway_config(backend: LocalBackend, text: str) -> None:
    """Run the stack's gateway with `text` as its config (an A/B variant): written, the gateway
    restarted, and back once it routes to every ingest instance."""
    backend.paths.haproxy_cfg.write_text(text)
    backend.stop("gateway")
    backend.start("gateway")
    topo = backend.topo
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if set(gateway_servers(topo.gateway_port, host=topo.gateway_host).values()) == {"UP"}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the gateway did not come back with every ingest instance UP")
