"""A console job in its own process: `python -m payctl.console.worker <module:function> <kind>`, the
request as JSON on stdin. Progress and the outcome go to stdout as JSON lines ({"ready": true} once
SIGINT is handled, {"progress": ...}, then {"result": ...} or {"error": ...}); anything else the
job prints goes to stderr. SIGINT (the
console's cancel) reaches the job as KeyboardInterrupt, as Ctrl-C does on the command line."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

from payctl.errors import PayctlError


def main(argv: list[str]) -> int:
    # SIGINT is the console's cancel. A console started in the background by a script or under
    # nohup has it ignored, and this process would inherit that: take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    entry, kind = argv
    module, _, name = entry.partition(":")
    request = json.loads(sys.stdin.read())
    # the protocol gets its own copy of stdout; stray prints of the job go to stderr
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, default=str) + "\n")

    send({"ready": True})  # SIGINT is handled from here on: the console sends its cancel after this

    try:
        job = getattr(importlib.import_module(module), name)
        send({"result": job(kind, request, lambda update: send({"progress": update}))})
        return 0
    except KeyboardInterrupt:
        send({"error": "cancelled before the job finished"})
        return 130
    except PayctlError as exc:
        send({"error": str(exc)})
        return 1
    except Exception as exc:
        send({"error": f"{type(exc).__name__}: {exc}"})
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
