"""history.ndjson.gz: a header line, then one line per completed operation, written as they
complete (streamed through gzip, so memory stays bounded however long the run) and read back with
every line checked (a damaged file is one UsageError naming file, line and what was expected)."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import IO

import orjson

from payctl.errors import UsageError
from payctl.history.model import Header, Malformed, Op, header_from_json, op_from_json

FILENAME = "history.ndjson.gz"


class HistoryWriter:
    """Append-only writer; `flush` pushes what is buffered to disk (a reader of a run in progress
    sees whole gzip members up to there)."""

    def __init__(self, path: Path, header: Header) -> None:
        self.path = path
        self._raw: IO[bytes] = path.open("wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self._gz.write(orjson.dumps(header.to_json()) + b"\n")
        self.count = 0

    def write(self, op: Op) -> None:
        self._gz.write(orjson.dumps(op.to_json()) + b"\n")
        self.count += 1

    def flush(self) -> None:
        self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def history_path(folder: Path) -> Path:
    """The history file of a run folder (or the file itself when given one)."""
    return folder if folder.is_file() else folder / FILENAME


def read_history(path: Path) -> tuple[Header, list[Op]]:
    """The header and every op, in file order; UsageError `FILE:LINE: <field>: expected <what>`."""
    if not path.is_file():
        raise UsageError(f"{path}: no such history file", f"a run folder holds {FILENAME}")
    ops: list[Op] = []
    header: Header | None = None
    number = 0
    try:
        with gzip.open(path, "rb") as gz:
            for number, line in enumerate(io.BufferedReader(gz), start=1):
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise UsageError(f"{path}:{number}: expected one JSON object per line") from None
                try:
                    if number == 1:
                        header = header_from_json(data)
                    else:
                        ops.append(op_from_json(data))
                except Malformed as exc:
                    raise UsageError(f"{path}:{number}: {exc.where}: expected {exc.expected}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"{path}:{number + 1}: expected gzip-compressed NDJSON ({exc})") from None
    if header is None:
        raise UsageError(f"{path}:1: expected the header line")
    return header, ops
