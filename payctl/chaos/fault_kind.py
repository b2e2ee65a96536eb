"""The declaration of an action kind, and the check every registry of them must pass.

A kind says, in one place: its action model, how the real driver applies it, the probe that
reads its state (if it has one), and the kind that reverts it. A kind without an undo must say
why nothing is left behind (`why_no_undo`): a kind that says neither is refused, so a fault can
never lose its undo silently. The undo journal, the model union and the driver's dispatch are all
derived from the registry (payctl.chaos.kinds)."""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from payctl.chaos.activity import Activity, ProbeBase

if TYPE_CHECKING:
    from payctl.chaos.driver import StackDriver

A = TypeVar("A", bound=Activity)
P = TypeVar("P", bound=ProbeBase)

# What identifies the thing a fault and its undo act on: an undo entry copies these fields from
# the fault (e.g. `pause shard2` → `resume shard2`), and `settled_by` compares them.
TARGET_FIELDS = ("service", "point", "source", "target")


class FaultKindError(ValueError):
    """A kind declared incompletely or inconsistently (a programming error, found at import)."""


@dataclass(frozen=True)
class ProbeKind(Generic[P]):
    """A probe that reads the state a fault kind leaves (e.g. is a fault hook still armed?)."""

    model: type[P]
    read: Callable[[StackDriver, P], Any]


@dataclass(frozen=True)
class FaultKind(Generic[A]):
    """One action kind. `undo`: the kind that reverts it; `undo=None` needs `why_no_undo`, the
    reason its effect ends by itself or leaves nothing to revert."""

    model: type[A]
    apply: Callable[[StackDriver, A], Any]
    undo: str | None
    why_no_undo: str = ""
    probe: ProbeKind[Any] | None = None


def type_tags(model: type[Activity]) -> tuple[str, ...]:
    """The `type` literal(s) a model accepts, e.g. ("stop", "start", …) for ServiceAction."""
    return tuple(str(tag) for tag in typing.get_args(model.model_fields["type"].annotation))


def check_kinds(kinds: Mapping[str, FaultKind[Any]]) -> None:
    """Refuse a registry with an incomplete or inconsistent kind (FaultKindError naming it)."""
    for name, kind in kinds.items():
        if name not in type_tags(kind.model):
            raise FaultKindError(f"fault kind '{name}': its model {kind.model.__name__} does not accept "
                                 f"type '{name}' (it accepts {', '.join(type_tags(kind.model)) or 'none'})")
        if kind.undo is None and not kind.why_no_undo.strip():
            raise FaultKindError(f"fault kind '{name}' declares no undo: give undo=<the kind that reverts it>, "
                                 "or undo=None with why_no_undo (why its effect ends by itself)")
        if kind.undo is not None:
            _check_undo(name, kind, kinds)
        if kind.probe is not None and len(type_tags(kind.probe.model)) != 1:
            raise FaultKindError(f"fault kind '{name}': its probe {kind.probe.model.__name__} must have one type")
    for model in {kind.model for kind in kinds.values()}:
        missing = [tag for tag in type_tags(model) if tag not in kinds]
        if missing:
            raise FaultKindError(f"{model.__name__} accepts type(s) {', '.join(missing)} that no fault kind "
                                 "declares (an action nothing would apply)")


def _check_undo(name: str, kind: FaultKind[Any], kinds: Mapping[str, FaultKind[Any]]) -> None:
    if kind.why_no_undo:
        raise FaultKindError(f"fault kind '{name}' declares both undo '{kind.undo}' and why_no_undo")
    reverter = kinds.get(str(kind.undo))
    if reverter is None:
        raise FaultKindError(f"fault kind '{name}': its undo '{kind.undo}' is not a declared kind")
    if reverter.undo is not None:
        raise FaultKindError(f"fault kind '{name}': its undo '{kind.undo}' must not need an undo itself")
    fields = kind.model.model_fields
    lacking = [f for f in TARGET_FIELDS if f in fields and f not in reverter.model.model_fields]
    if lacking:
        raise FaultKindError(f"fault kind '{name}': its undo '{kind.undo}' cannot name the same "
                             f"{', '.join(lacking)}")
