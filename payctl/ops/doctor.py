"""What this machine has and lacks for the stack, with the command that installs each part."""

from __future__ import annotations

from typing import Any

from payctl.stack.binaries import INSTALL_HINTS, Binaries


def check(bins: Binaries | None = None) -> list[dict[str, Any]]:
    bins = bins or Binaries.discover()
    return [
        {"name": name, "found": bool(bins.found.get(name)), "path": bins.found.get(name),
         "install": None if bins.found.get(name) else hint}
        for name, hint in INSTALL_HINTS.items()
    ]
