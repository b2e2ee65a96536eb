"""Files written whole or not at all: a reader (a process re-reading its fault file, a browser
opening a report, `chaos recover` after a crash) never sees half of one. Written to a temporary
file beside the target, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, text: str, mode: int = 0o644, durable: bool = False) -> None:
    """`mode` is set before the rename (a private file is never readable by others, not even
    briefly); `durable` fsyncs the data first (a journal that must survive a crash)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
