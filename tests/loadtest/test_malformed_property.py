"""Property: whatever damage real k6 output suffers, `payctl loadtest analyze` either grades it
(exit 0 or 1) or exits 2 with exactly one line naming the file — never a traceback, never another
exit code. The inputs are the real k6 samples in data/, damaged by tests/mutations.py."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_inprocess import run_payctl
from tests.mutations import damaged_bytes, damaged_ndjson, mutated_document

DATA = Path(__file__).parent / "data"
SUMMARIES = {name: json.loads((DATA / name).read_text()) for name in ("handle-summary.json", "summary-export.json")}
RAW = (DATA / "raw.ndjson").read_bytes().splitlines()
FORMATS = st.sampled_from(["table", "json", "md", "html", "junit"])
# PAYCTL_PROPERTY_EXAMPLES raises the count for a longer hunt; the default keeps the suite fast.
FAST = settings(max_examples=int(os.environ.get("PAYCTL_PROPERTY_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def judge(data: bytes, fmt: str, name: str = "input.json") -> None:
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"GITHUB_STEP_SUMMARY": ""}):
        f = Path(tmp) / name
        f.write_bytes(data)
        r = run_payctl("loadtest", "analyze", str(f), "--format", fmt)
    if r.code in (0, 1):
        assert r.stderr == "", r.stderr
        return
    assert r.code == 2, r
    assert len(r.lines) == 1 and r.lines[0].startswith(f"error: {f}: "), r.stderr


def maybe_gzip(data: bytes, packed: bool) -> bytes:
    return gzip.compress(data, mtime=0) if packed else data


@FAST
@given(st.data(), st.sampled_from(sorted(SUMMARIES)), FORMATS, st.booleans())
def test_damaged_summaries(data: st.DataObject, name: str, fmt: str, packed: bool) -> None:
    doc = SUMMARIES[name]
    for _ in range(data.draw(st.integers(1, 3))):
        doc = data.draw(mutated_document(doc))
    judge(maybe_gzip(json.dumps(doc).encode(), packed), fmt)


@FAST
@given(st.data(), FORMATS, st.booleans())
def test_damaged_raw_streams(data: st.DataObject, fmt: str, packed: bool) -> None:
    lines = data.draw(damaged_ndjson(RAW))
    judge(maybe_gzip(b"\n".join(lines) + b"\n", packed), fmt, "raw.ndjson")


@FAST
@given(st.data(), st.sampled_from(["handle-summary.json", "summary-export.json", "raw.ndjson", "raw.ndjson.gz"]),
       FORMATS)
def test_damaged_bytes(data: st.DataObject, name: str, fmt: str) -> None:
    judge(data.draw(damaged_bytes((DATA / name).read_bytes())), fmt, name)


@pytest.mark.parametrize(("name", "damage"), [
    ("raw.ndjson", lambda b: b.replace(b"\n", b"\n[1,2]\n", 1)),
    ("raw.ndjson.gz", lambda b: b[: len(b) // 2]),
    ("summary-export.json", lambda b: b.replace(b'"count":', b'"count":"many",', 1)),
])
def test_the_installed_command_on_damaged_samples(tmp_path, name, damage):
    f = tmp_path / name
    f.write_bytes(damage((DATA / name).read_bytes()))
    r = subprocess.run([sys.executable, "-m", "payctl.cli.app", "loadtest", "analyze", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and f"error: {f}: " in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
