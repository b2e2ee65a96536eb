"""k6 threshold expressions: parse and evaluate against observed statistics (pure)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping

_EXPR = re.compile(r"^\s*(?P<stat>[a-z]+(?:\(\s*\d+(?:\.\d+)?\s*\))?)\s*(?P<op><=|>=|==|!=|<|>|===)\s*"
                   r"(?P<value>-?\d+(?:\.\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "===": operator.eq, "!=": operator.ne,
}


def parse_expression(expression: str) -> tuple[str, str, float] | None:
    """'p(95)<200' → ('p(95)', '<', 200.0); None when it is not a simple comparison."""
    m = _EXPR.match(expression)
    if not m:
        return None
    stat = re.sub(r"\s+", "", m.group("stat"))
    return stat, m.group("op"), float(m.group("value"))


def observed_value(expression: str, stats: Mapping[str, float | None]) -> float | None:
    parsed = parse_expression(expression)
    if parsed is None:
        return None
    return stats.get(parsed[0])


def evaluate(expression: str, stats: Mapping[str, float | None]) -> bool | None:
    """True when the threshold holds, None when the statistic is not available."""
    parsed = parse_expression(expression)
    if parsed is None:
        return None
    stat, op, limit = parsed
    value = stats.get(stat)
    if value is None:
        return None
    return _OPS[op](value, limit)
