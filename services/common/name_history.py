"""Every object that ever carried each name, for history (kept by each service's projection).

Names are scoped as the owning service scopes its objects: profiles, instances, images and
image aliases by the id of their project (ids survive project renames and deletes), networks
and storage pools by their node, projects by ``""``. For each (kind, scope, name) it keeps
the objects that carried the name with the stream sequence of the last event each had while
carrying it, oldest first; and, for each object, its latest kind, scope, name and whether it is
deleted (a projection may drop deleted objects, history still lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Carrier:
    """One object as the name history knows it."""

    object_id: str
    kind: str
    scope: str
    name: str
    deleted: bool


def _scope_key(kind: str, scope: str) -> str:
    return f"{kind}\0{scope}"


class NameHistory:
    """Name -> the objects that carried it; object -> its latest name."""

    def __init__(self) -> None:
        self.load(None)

    def saw(
        self, kind: str, scope: str, name: str, object_id: str, seq: int, deleted: bool
    ) -> None:
        """Record one event of ``object_id``, which carries ``name`` after it."""
        names = self._names.setdefault(_scope_key(kind, scope), {})
        held = names.setdefault(name, {})
        held.pop(object_id, None)  # reinserted last: the dict stays ordered by sequence
        held[object_id] = seq
        self._objects[object_id] = (kind, scope, name, deleted)

    def holders(self, kind: str, scope: str, name: str) -> dict[str, int]:
        """The objects that carried ``name`` -> the sequence of their last event with it."""
        return dict(self._names.get(_scope_key(kind, scope), {}).get(name, {}))

    def latest(self, kind: str, scope: str, name: str) -> str | None:
        """The object that carried ``name`` most recently (live or not)."""
        held = self._names.get(_scope_key(kind, scope), {}).get(name)
        return next(reversed(held)) if held else None

    def names(self, kind: str, scope: str) -> list[str]:
        """Every name ever carried in the scope."""
        return sorted(self._names.get(_scope_key(kind, scope), {}))

    def carrier(self, object_id: str) -> Carrier | None:
        known = self._objects.get(object_id)
        return Carrier(object_id, *known) if known else None

    def dump(self) -> dict[str, Any]:
        return {"names": self._names, "objects": self._objects}

    def load(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self._names: dict[str, dict[str, dict[str, int]]] = {
            scope: {name: dict(held) for name, held in names.items()}
            for scope, names in state.get("names", {}).items()
        }
        self._objects: dict[str, tuple[str, str, str, bool]] = {
            k: (v[0], v[1], v[2], bool(v[3])) for k, v in state.get("objects", {}).items()
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameHistory) and self.dump() == other.dump()

    __hash__ = None  # type: ignore[assignment]
