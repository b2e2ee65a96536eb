"""Lanes: work that waits on an outside system, run side by side without reordering what must stay
in order (the refund stage: one lane per payment).

`by_key` groups items into lanes, each in its items' order; `run_lanes` runs every lane's items
one after another, the lanes concurrently on an executor (its worker count bounds how many items
are in flight). A lane stops at its first failure: the items after it are not started, so nothing
of a payment overtakes an earlier item of that payment that has not succeeded (the caller handles
the rest one at a time, in order)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)

log = logging.getLogger("payflow.consumer")


def by_key(items: Iterable[T], key: Callable[[T], K]) -> list[list[T]]:
    """Items grouped by `key`, each group in the items' order; groups in order of first appearance."""
    lanes: dict[K, list[T]] = {}
    for item in items:
        lanes.setdefault(key(item), []).append(item)
    return list(lanes.values())


def run_lanes(lanes: list[list[T]], work: Callable[[T], R], executor: Executor) -> list[tuple[T, R]]:
    """Run each lane's items in order, the lanes concurrently on `executor`; the items that
    succeeded with their results. A lane stops at the first item that raises (logged); the items
    not run are not in the result."""

    def run(lane: list[T]) -> list[tuple[T, R]]:
        done: list[tuple[T, R]] = []
        for item in lane:
            try:
                done.append((item, work(item)))
            except Exception as exc:
                log.info("a lane stopped after %s item(s) (%s: %s); the rest of it goes one at a time", len(done),
                         type(exc).__name__, exc)
                break
        return done

    futures = [executor.submit(run, lane) for lane in lanes]
    return [pair for future in futures for pair in future.result()]
