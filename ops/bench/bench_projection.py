"""The projection the replay benchmark rebuilds.

The instance service's real catalog projection when it is in the tree; otherwise a simple
profile-folding stand-in that keeps the latest LXD-shaped state of every profile, the same
work a catalog read model does per event (decode, pick the aggregate, replace its state).
"""

from __future__ import annotations

from typing import Any

from schemas.envelope import StoredEvent
from schemas.events import PROFILE_DELETED, PROFILE_RENAMED
from services.common.projection import Projection


class ProfileFold(Projection):
    """Latest state of every profile, keyed by aggregate id."""

    name = "bench-profiles"
    aggregates = frozenset({"profile"})

    def __init__(self) -> None:
        super().__init__()
        self.profiles: dict[str, dict[str, Any]] = {}

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if event.type == PROFILE_DELETED:
            self.profiles.pop(event.aggregate_id, None)
            return
        current = self.profiles.get(event.aggregate_id, {})
        payload = event.payload
        if event.type == PROFILE_RENAMED:
            self.profiles[event.aggregate_id] = {**current, "name": payload["name"]}
            return
        self.profiles[event.aggregate_id] = {
            "name": payload["name"],
            "project": event.project,
            "description": payload.get("description", ""),
            "config": payload.get("config", {}),
            "devices": payload.get("devices", {}),
            "version": event.version,
            "seq": stored.seq,
        }

    def dump(self) -> Any:
        return self.profiles

    def load(self, state: Any) -> None:
        self.profiles = dict(state or {})


def load_projection(stand_in: bool = False) -> Projection:
    """A fresh, empty projection to rebuild: the real catalog one unless ``stand_in``."""
    if not stand_in:
        try:
            from services.instance.catalog.projection import CatalogProjection
        except ImportError:
            pass
        else:
            return CatalogProjection()
    return ProfileFold()


def describe(projection: Projection) -> str:
    cls = type(projection)
    return f"{cls.__module__}.{cls.__qualname__}"


def count_objects(projection: Projection) -> int:
    """How many objects the projection holds (to check the rebuild is complete)."""
    profiles = getattr(projection, "profiles", None)
    return len(profiles) if profiles is not None else -1
