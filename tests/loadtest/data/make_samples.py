"""Regenerate the small real k6 samples in this folder (k6 against the test server of conftest.py):
`python -m tests.loadtest.data.make_samples`. The samples are committed so the property tests run
without k6; a shorter run than the session fixture keeps them small."""

from __future__ import annotations

import gzip
import subprocess
import tempfile
from pathlib import Path

from payctl.stack.binaries import Binaries
from tests.loadtest.conftest import SCRIPT, serve

HERE = Path(__file__).parent
SHORT = SCRIPT.replace("rate: 40", "rate: 8").replace("duration: '3s'", "duration: '1s'")


def main() -> None:
    k6 = Binaries.discover().require("k6")
    with tempfile.TemporaryDirectory() as tmp, serve() as base:
        script = Path(tmp) / "script.js"
        script.write_text(SHORT)
        raw = HERE / "raw.ndjson"
        result = subprocess.run(
            [k6, "run", "--quiet", "--summary-export", str(HERE / "summary-export.json"), "--out", f"json={raw}",
             "--env", f"BASE={base}", "--env", f"SUMMARY_JSON={HERE / 'handle-summary.json'}", str(script)],
            capture_output=True, text=True, timeout=120, cwd=tmp)
        assert result.returncode in (0, 99), result.stderr[-2000:]
    (HERE / "raw.ndjson.gz").write_bytes(gzip.compress(raw.read_bytes(), mtime=0))


if __name__ == "__main__":
    main()
