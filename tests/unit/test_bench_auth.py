"""Every bench that loads the platform with k6 calls as the merchants it names: without their keys
(k6_env) the stack answers 401 to every payment and the bench measures refusals. Read from the
benches' source: each run_and_analyze call either passes k6_env or loads the bare-Flask ceiling."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _calls() -> list[tuple[str, int, ast.Call]]:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_and_analyze":
                found.append((path.name, node.lineno, node))
    return found


def test_every_platform_load_in_the_benches_carries_the_merchants_keys() -> None:
    calls = _calls()
    assert len(calls) >= 5
    missing = [f"{name}:{line}" for name, line, call in calls
               if "hello" not in ast.unparse(call.args[0]) and not any(k.arg == "k6_env" for k in call.keywords)]
    assert missing == [], f"run_and_analyze without k6_env (every payment would be 401): {missing}"
