"""``warren_history`` for any service: every event of one object, and the object as it was.

Each service serves the history of the aggregates it owns on its own history subjects, with
a :class:`~services.common.history_lookup.HistoryBook` saying what is particular to its kinds.
The object is one of those that carried the name (see :mod:`history_lookup`): the one
``object_id`` picks, else the live one, else the latest. Its events come from the log itself,
and the state as of ``at_seq``/``at_time`` is the fold of the events up to that point with the
aggregate's own ``evolve``. The list query gives every name a kind of object carried.
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
from services.common.history_lookup import Evolve, HistoryBook, HistoryLookup


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
    evolve: Evolve, stored: list[StoredEvent], at_seq: int | None, at_time: datetime | None
) -> Any:
    """Fold the events up to the given point (all of them without one); ``None`` when the
    object did not exist then (or was deleted)."""
    state: Any = None
    for item in stored:
        if at_seq is not None and item.seq > at_seq:
            break
        if at_time is not None and item.event.occurred_at > at_time:
            break
        state = evolve(state, item.event)
    return None if state is None or getattr(state, "deleted", False) else state


class HistoryEndpoints:
    """Serves a service's history and history-list subjects for the kinds of its book."""

    def __init__(self, book: HistoryBook) -> None:
        self.book = book

    def register(self, group: EndpointGroup, history: str, listing: str) -> None:
        group.add(history, HistoryQuery, self.history)
        group.add(listing, HistoryListQuery, self.listing)

    def _check_kind(self, kind: str) -> None:
        if kind not in self.book.evolvers:
            known = ", ".join(self.book.evolvers)
            raise BadRequest(f"Unknown kind {kind!r} (expected one of {known})")

    async def history(self, body: HistoryQuery, meta: RequestMeta) -> tuple[Any, int]:
        self._check_kind(body.kind)
        at_time = parse_time(body.at_time) if body.at_time else None
        seq = await self.book.fresh()
        lookup = HistoryLookup(self.book)
        name = self.book.resolve(body.kind, body.name, meta.project)
        object_id, holders = lookup.select(body.kind, name, meta.project, body.object_id)
        stored = await self.book.store.load(subjects.event(body.kind, object_id))
        if body.at_seq is None and at_time is None:
            state = await self.book.current(body.kind, object_id)
        else:
            past = state_at(self.book.evolvers[body.kind], stored, body.at_seq, at_time)
            state = None if past is None else self.book.past(body.kind, past)
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
        seq = await self.book.fresh()
        lookup = HistoryLookup(self.book)
        if body.recursion < 1:
            names = lookup.names(body.kind, meta.project)
            return [lookup.url(body.kind, n, meta.project) for n in names], seq
        return [n.model_dump() for n in lookup.listing(body.kind, meta.project)], seq
