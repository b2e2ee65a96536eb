"""Which records may start now when work runs side by side (pure): the refund stage hands records
over in groups, several in flight, and a payment's refunds must stay in order and never race.

A record starts when no record of its key (the payment the record's value names) is in flight;
otherwise it is held, in arrival order, until its key is free (held records are admitted first).
Records of one key in the same group are fine: the group's lanes run them one after another."""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Admitted(Generic[R]):
    start: list[R]  # in arrival order
    held: list[R]   # in arrival order, behind a record of their key that is busy


class KeyedAdmission(Generic[R, K]):
    """The keys busy with work in flight, and the records held behind them."""

    def __init__(self, key: Callable[[R], K]) -> None:
        self.key = key
        self._busy: collections.Counter[K] = collections.Counter()
        self._held: list[R] = []

    def admit(self, arriving: Iterable[R]) -> list[R]:
        """The records that may start now, held ones first (in order), then `arriving` ones. The
        caller starts them at once and calls `started` with them."""
        admitted = split(self._held + list(arriving), self.key, set(self._busy))
        self._held = admitted.held
        return admitted.start

    def started(self, records: Iterable[R]) -> list[K]:
        """These records are in flight: their keys are busy until `finished` with what this returns."""
        keys = list({self.key(r): None for r in records})
        self._busy.update(keys)
        return keys

    def finished(self, keys: Iterable[K]) -> None:
        self._busy.subtract(keys)
        self._busy += collections.Counter()  # drop the keys that reached 0

    def keep_only(self, keep: Callable[[R], bool]) -> None:
        """Drop the held records `keep` rejects (their partition was revoked, or is read again)."""
        self._held = [r for r in self._held if keep(r)]

    @property
    def held(self) -> list[R]:
        return list(self._held)


def split(records: list[R], key: Callable[[R], K], busy: set[K]) -> Admitted[R]:
    """Records whose key is busy are held; the rest start (each list in the records' order)."""
    start: list[R] = []
    held: list[R] = []
    for record in records:
        if key(record) in busy:
            held.append(record)
        else:
            start.append(record)
    return Admitted(start, held)
