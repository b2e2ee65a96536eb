"""Hypothesis strategies that damage JSON documents and NDJSON streams the way disks, editors and
half-written files do: a value of another type at any path, a deleted key, a truncated line, a line
that is not an object, bytes that are not UTF-8."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

Path_ = tuple[str | int, ...]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
# the same type, but values a writer never meant: NaN, infinities, huge or negative numbers, odd text
same_type_oddities = {
    "number": st.floats() | st.integers() | st.sampled_from([0, -1, 10**30, 1e308]),
    "string": st.text(max_size=40) | st.sampled_from(["", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                                                      "2024-13-45T99:99:99Z", "[/bold]", "\n"]),
}


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path below `doc` (the root excluded), depth first."""
    out: list[Path_] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(doc, dict):
        children = list(doc.items())
    elif isinstance(doc, list):
        children = list(enumerate(doc))
    for key, child in children:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_document(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` with one value replaced (by another type, or an odd value of its own type) or deleted."""
    doc = copy.deepcopy(doc)
    everything = paths(doc)
    if not everything:
        return draw(json_values)
    path = draw(st.sampled_from(everything))
    parent, key = _get(doc, path[:-1]), path[-1]
    old = parent[key]
    action = draw(st.sampled_from(["other-type", "other-type", "odd-value", "delete"]))
    if action == "delete":
        del parent[key]
    elif action == "odd-value" and kind(old) in same_type_oddities:
        parent[key] = draw(same_type_oddities[kind(old)])
    else:
        parent[key] = draw(json_values.filter(lambda v: kind(v) != kind(old)))
    return doc


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, or with a few bytes (often not UTF-8) inserted or overwritten."""
    at = draw(st.integers(0, len(data)))
    action = draw(st.sampled_from(["truncate", "insert", "overwrite"]))
    if action == "truncate":
        return data[:at]
    junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]) | st.binary(min_size=1, max_size=4))
    return data[:at] + junk + data[at + (len(junk) if action == "overwrite" else 0):]


@st.composite
def damaged_ndjson(draw: st.DrawFn, lines: list[bytes]) -> list[bytes]:
    """One to three lines of an NDJSON stream damaged."""
    lines = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["mutate", "mutate", "mutate", "truncate", "not-an-object", "bytes",
                                       "drop"]))
        if action == "mutate":
            try:
                doc = json.loads(lines[i])
            except ValueError:
                continue  # already damaged by an earlier step
            lines[i] = json.dumps(draw(mutated_document(doc))).encode()
        elif action == "truncate":
            lines[i] = lines[i][:draw(st.integers(0, max(len(lines[i]) - 1, 0)))]
        elif action == "not-an-object":
            value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
            lines.insert(i, json.dumps(value).encode())
        elif action == "bytes":
            lines[i] = draw(damaged_bytes(lines[i]))
        elif len(lines) > 1:
            del lines[i]
    return lines
