"""The instances part of the catalog read model: by id, by (project, name), by node."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from schemas.envelope import Event
from services.instance.instances import aggregate
from services.instance.instances.state import InstanceState


def former_key(project_id: str, name: str) -> str:
    return f"{project_id}\0{name}"


class InstanceIndex:
    """Instances folded with the aggregate's own ``evolve`` (held by the catalog projection,
    so profiles and projects see their users in the same consistent read model)."""

    def __init__(self) -> None:
        self.load(None)

    def apply(self, event: Event) -> None:
        old = self.by_id.get(event.aggregate_id)
        new = aggregate.evolve(old, event)
        if new is None:
            return
        self.by_id[new.id] = new
        if old is not None and not old.deleted:
            key = (old.project_id, old.name)
            if self.by_name.get(key) == old.id:
                del self.by_name[key]
        self.former[former_key(new.project_id, new.name)] = new.id
        if not new.deleted:
            self.by_name[(new.project_id, new.name)] = new.id
        else:
            # Deleted instances are only kept for their id's history: drop the state.
            del self.by_id[new.id]

    def set_profiles(self, instance_id: str, profiles: list[str]) -> None:
        """Point a live instance at its profiles' current names (a profile was renamed)."""
        self.by_id[instance_id] = replace(self.by_id[instance_id], profiles=profiles)

    def dump(self) -> dict[str, Any]:
        return {"live": [s.dump() for s in self.by_id.values()], "former": self.former}

    def load(self, state: dict[str, Any] | None) -> None:
        self.by_id: dict[str, InstanceState] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        #: The latest instance (live or not) that carried each name, for history.
        self.former: dict[str, str] = dict((state or {}).get("former", {}))
        for raw in (state or {}).get("live", []):
            item = InstanceState(**raw)
            self.by_id[item.id] = item
            self.by_name[(item.project_id, item.name)] = item.id

    def former_holder(self, project_id: str, name: str) -> str | None:
        return self.former.get(former_key(project_id, name))

    def get(self, project_id: str, name: str) -> InstanceState | None:
        agg_id = self.by_name.get((project_id, name))
        return self.by_id.get(agg_id) if agg_id else None

    def has_name(self, instance_id: str, name: str) -> bool:
        state = self.by_id.get(instance_id)
        return state is not None and state.name == name

    def in_project(self, project_id: str) -> list[InstanceState]:
        found = [self.by_id[i] for (p, _), i in self.by_name.items() if p == project_id]
        return sorted(found, key=lambda s: s.name)

    def all(self) -> list[InstanceState]:
        return sorted(self.by_id.values(), key=lambda s: (s.project_id, s.name))

    def on_node(self, node: str) -> list[InstanceState]:
        return [s for s in self.by_id.values() if s.node == node]

    def using_profile(self, project_ids: set[str], profile: str) -> list[InstanceState]:
        """Instances of those projects whose profile list names ``profile``."""
        return [
            s for s in self.by_id.values() if s.project_id in project_ids and profile in s.profiles
        ]
