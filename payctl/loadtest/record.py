"""The per-request record of a run (`raw.ndjson.gz`): k6's NDJSON stream, reduced while k6 writes it.

k6 cannot choose which metrics an output receives (grafana/k6#1321): `--out json` writes about eleven
lines, some 3 KB, per HTTP request (timing phases, data sent and received, every system tag), so ten
minutes at 1,000 requests/s would be gigabytes. k6 writes its stream into a FIFO instead; a thread here
keeps only the points the report reads, with only the tags it reads and times to the millisecond,
and gzips them. What it writes is still k6 NDJSON (a subset), so `parse` reads it like any k6 stream
and users can read it with their own tools.

Kept: every `Metric` line (threshold declarations); points of http_req_duration (tags op and
expected_response), http_reqs, http_req_failed, iterations, dropped_iterations, checks (tag check),
vus, the payment_<op>_duration trends, and scenario_target_rate when its value changes."""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
import select
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from payctl.errors import EnvironmentProblem

FILE = "raw.ndjson.gz"
FIFO = ".k6-stream.fifo"
TAGS: dict[str, tuple[str, ...]] = {
    "http_req_duration": ("op", "expected_response"),
    "http_reqs": (),
    "http_req_failed": (),
    "iterations": (),
    "dropped_iterations": (),
    "checks": ("check",),
    "vus": (),
    "scenario_target_rate": (),
}
_TREND = re.compile(r"^payment_[a-z_]+_duration$")
_METRIC = re.compile(rb'"metric":\s*"([^"]+)"')
_FRACTION = re.compile(r"^([^.]+\.\d{3})\d*Z$")
CHUNK = 1 << 16


@dataclass
class RecordStats:
    """What k6 wrote into the FIFO and what the record kept (written into record.json)."""

    k6_lines: int = 0
    k6_bytes: int = 0
    kept_lines: int = 0
    written_bytes: int = 0
    unreadable_lines: int = 0  # passed through as they came

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Reducer:
    """Line by line (pure apart from its state): the reduced line, or None to drop it."""

    def __init__(self) -> None:
        self.last_target: Any = None

    def reduce(self, line: bytes) -> bytes | None:
        found = _METRIC.search(line, 0, 120)
        if found is not None:
            name = found.group(1).decode(errors="replace")
            if name not in TAGS and not _TREND.match(name) and b'"Point"' in line[:200]:
                return None  # most of the stream: dropped without parsing JSON
        item = json.loads(line)
        if not isinstance(item, dict) or item.get("type") != "Point":
            return line if line.endswith(b"\n") else line + b"\n"
        metric = str(item.get("metric"))
        data = item.get("data") or {}
        value = data.get("value")
        if metric == "scenario_target_rate":
            if value == self.last_target:
                return None
            self.last_target = value
        tags = data.get("tags") or {}
        keep = TAGS.get(metric, ())
        kept = {k: tags[k] for k in keep if k in tags}
        time = data.get("time")
        if isinstance(time, str):
            short = _FRACTION.match(time)
            time = f"{short.group(1)}Z" if short else time
        out: dict[str, Any] = {"metric": metric, "type": "Point", "data": {"time": time, "value": value}}
        if kept:
            out["data"]["tags"] = kept
        return json.dumps(out, separators=(",", ":")).encode() + b"\n"


class Recorder:
    """Owns the FIFO k6 writes to and the thread that reduces it into `target`.

    The FIFO is opened read-write, so neither k6's open nor ours ever blocks (k6 may fail before it
    opens it) and k6 never sees a closed pipe; `finish` (after k6 exited, everything it wrote being
    in the pipe) drains what is left and closes the record."""

    def __init__(self, folder: Path) -> None:
        self.target = folder / FILE
        self.fifo = folder / FIFO
        self.stats = RecordStats()
        self._reducer = Reducer()
        self._stop = threading.Event()
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        os.mkfifo(self.fifo, 0o600)
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="k6-record", daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[bytes]:
        """What k6 writes, as it comes, until `finish` asked and the pipe is empty."""
        while True:
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                if self._stop.is_set():
                    return
                continue
            try:
                chunk = os.read(self._fd, CHUNK)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                raise
            self.stats.k6_bytes += len(chunk)
            yield chunk

    def _run(self) -> None:
        chunks = self._chunks()
        try:
            pending = b""
            with gzip.open(self.target, "wb", compresslevel=6) as out:
                for chunk in chunks:
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        self._write(out, line)
                if pending.strip():
                    self._write(out, pending)
        except Exception as exc:  # e.g. a full disk: keep draining so k6 never blocks on the pipe
            self._error = exc
            for _ in chunks:
                pass

    def _write(self, out: Any, line: bytes) -> None:
        if not line.strip():
            return
        self.stats.k6_lines += 1
        try:
            reduced = self._reducer.reduce(line)
        except (ValueError, TypeError, AttributeError):
            # not what k6 writes: kept as it came, so the analyzer names the line
            self.stats.unreadable_lines += 1
            reduced = line + b"\n"
        if reduced is not None:
            self.stats.kept_lines += 1
            out.write(reduced)

    def finish(self) -> RecordStats:
        """After k6 exited: drain, close, remove the FIFO; write record.json beside the record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.fifo.unlink()
        if self._error is not None:
            raise EnvironmentProblem(f"could not write {self.target}: {self._error}",
                                     "free disk space, or run with --no-raw")
        if self.target.exists():
            self.stats.written_bytes = self.target.stat().st_size
        (self.target.parent / "record.json").write_text(json.dumps(self.stats.as_json(), indent=2))
        return self.stats
