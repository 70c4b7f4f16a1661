"""``warren_history``: every event of one object, and the object as it was at a point.

The object is one of those that carried the name in the request's project (or in a project
that had that name before: see :mod:`history_lookup`): the one ``object_id`` picks, else the
live one, else the latest. Its events come from the log itself, and the state as of
``at_seq``/``at_time`` is the fold of the events up to that point with the aggregate's own
``evolve``. The list query gives every name a kind of object carried in a project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import subjects
from schemas.catalog import HistoryEntry, HistoryListQuery, HistoryQuery, HistoryResult
from schemas.envelope import StoredEvent
from schemas.errors import BadRequest
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.catalog import profile as profile_agg
from services.instance.catalog import project as project_agg
from services.instance.catalog.context import Catalog
from services.instance.catalog.history_lookup import HistoryLookup
from services.instance.catalog.meta import PROFILE, PROJECT
from services.instance.catalog.state import ProfileState, ProjectState, profile_dict, project_dict
from services.instance.instances import aggregate as instance_agg
from services.instance.instances.state import INSTANCE, InstanceState

KINDS = (PROFILE, PROJECT, INSTANCE)
_EVOLVE = {PROFILE: profile_agg.evolve, PROJECT: project_agg.evolve, INSTANCE: instance_agg.evolve}


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp (a naive one is taken as UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError as exc:
        raise BadRequest(f"Invalid time {value!r}: expected RFC 3339") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def entry(stored: StoredEvent) -> HistoryEntry:
    """One event as the history API shows it: the internal ``project_id`` of the payload is
    shown as ``project``, the project's name when the event happened."""
    e = stored.event
    payload: dict[str, Any] = {}
    for key, value in e.payload.items():
        if key == "project_id":
            payload["project"] = e.project  # in the id's place
        else:
            payload[key] = value
    return HistoryEntry(
        seq=stored.seq,
        type=e.type,
        occurred_at=e.occurred_at.isoformat().replace("+00:00", "Z"),
        requestor=e.requestor,
        correlation_id=e.correlation_id,
        version=e.version,
        payload=payload,
    )


def state_at(
    kind: str, stored: list[StoredEvent], at_seq: int | None, at_time: datetime | None
) -> Any:
    """Fold the events up to the given point (all of them without one)."""
    state: Any = None
    evolve = _EVOLVE[kind]
    for item in stored:
        if at_seq is not None and item.seq > at_seq:
            break
        if at_time is not None and item.event.occurred_at > at_time:
            break
        state = evolve(state, item.event)
    return None if state is None or state.deleted else state


class HistoryHandler:
    """Serves :data:`subjects.HISTORY` for the catalog's kinds."""

    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.HISTORY, HistoryQuery, self.history)
        group.add(subjects.HISTORY_LIST, HistoryListQuery, self.listing)

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise BadRequest(f"Unknown kind {kind!r} (expected one of {', '.join(KINDS)})")

    async def history(self, body: HistoryQuery, meta: RequestMeta) -> tuple[Any, int]:
        self._check_kind(body.kind)
        at_time = parse_time(body.at_time) if body.at_time else None
        seq = await self.c.fresh()
        lookup = HistoryLookup(self.c.projection)
        object_id, holders = lookup.select(body.kind, body.name, meta.project, body.object_id)
        stored = await self.c.store.load(subjects.event(body.kind, object_id))
        if body.at_seq is None and at_time is None:
            state: Any = self._current(body.kind, object_id)
        else:
            state = self._view(state_at(body.kind, stored, body.at_seq, at_time))
        chosen = lookup.describe(object_id)
        result = HistoryResult(
            object_id=object_id,
            kind=body.kind,
            name=chosen.name,
            project=chosen.project,
            events=[entry(s) for s in stored],
            state=state,
            holders=[lookup.describe(h) for h in holders],
        )
        return result.model_dump(), seq

    async def listing(self, body: HistoryListQuery, meta: RequestMeta) -> tuple[Any, int]:
        self._check_kind(body.kind)
        seq = await self.c.fresh()
        lookup = HistoryLookup(self.c.projection)
        if body.recursion < 1:
            names = lookup.names(body.kind, meta.project)
            return [lookup.url(body.kind, n, meta.project) for n in names], seq
        return [n.model_dump() for n in lookup.listing(body.kind, meta.project)], seq

    def _current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        p = self.c.projection
        if kind == PROJECT:
            project = p.project_by_id(object_id)
            return p.project_view(project) if project else None
        if kind == INSTANCE:
            instance = p.instances.by_id.get(object_id)
            return instance_view(instance) if instance else None
        profile = p.profiles.get(object_id)
        return p.profile_view(profile) if profile and not profile.deleted else None

    @staticmethod
    def _view(state: Any) -> dict[str, Any] | None:
        # A past state's used_by is not kept in the log of the object itself: shown empty.
        if isinstance(state, ProfileState):
            return profile_dict(state, [])
        if isinstance(state, ProjectState):
            return project_dict(state, [])
        if isinstance(state, InstanceState):
            return instance_view(state)
        return None


def instance_view(state: InstanceState) -> dict[str, Any]:
    """An instance as its own events describe it (the history's state; live status and
    profile expansion are the instance API's business)."""
    return {"name": state.name, **state.writable(), "created_at": state.created_at}
