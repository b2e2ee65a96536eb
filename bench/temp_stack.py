"""A whole stack of its own for a bench: in a temporary folder, at a port offset clear of a user's
stack, removed with its data when the bench ends (whatever way it ends)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payctl.stack.local import LocalBackend
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
