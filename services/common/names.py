"""Unique names across aggregates, enforced by the log itself.

A name lives on its own subject (``events.name.<digest>``); claiming it is an append with the
expected last sequence of that subject, so of two concurrent creators exactly one wins. The
aggregate's id, not its name, keys its own events, so renames keep history intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from schemas import events, subjects
from schemas.envelope import Event, StoredEvent, utcnow
from schemas.errors import Conflict
from services.common.eventstore import EventStore, WrongSequence

NAME_AGGREGATE = "name"
#: A claim whose owner never appeared is honoured this long (its creator may be mid-way).
IN_FLIGHT = timedelta(seconds=30)


def event_meta(cmd: Any) -> dict[str, str | None]:
    """The identity fields of a command's metadata (requestor, correlation and causation ids,
    node) as claims and releases copy them onto their events."""
    return {
        "requestor": cmd.requestor,
        "correlation_id": cmd.correlation_id,
        "causation_id": cmd.causation_id,
        "node": cmd.node,
    }


def name_key(kind: str, scope: str, name: str) -> str:
    """The subject token of one name within a scope (hashed: names may hold any character)."""
    return hashlib.sha256(f"{kind}\0{scope}\0{name}".encode()).hexdigest()[:40]


class NameRegistry:
    """Claims and releases names for one kind of object (``profile``, ``project``...)."""

    def __init__(self, store: EventStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    async def claim(
        self,
        scope: str,
        name: str,
        owner: str,
        owner_has_name: Callable[[str, str], bool],
        meta: dict[str, str | None],
    ) -> None:
        """Claim ``name`` for ``owner`` or raise :class:`Conflict` if another object holds it.

        ``owner_has_name(owner_id, name)`` tells whether a previous holder really carries the
        name now (a claim left by a crash between claim and create is not honoured forever).
        """
        key = name_key(self.kind, scope, name)
        payload = {"kind": self.kind, "scope": scope, "name": name, "owner": owner}
        # Most names were never used: claim blind first, and only read the name's subject
        # when that append finds history there (one round trip saved on the common path).
        try:
            await self._append(key, events.NAME_CLAIMED, payload, meta, None)
            return
        except WrongSequence:
            pass
        last = await self.store.last(subjects.event(NAME_AGGREGATE, key))
        if last is not None and last.event.type == events.NAME_CLAIMED:
            holder = last.event.payload["owner"]
            if holder == owner:
                return
            fresh = utcnow() - last.event.occurred_at < IN_FLIGHT
            if fresh or owner_has_name(holder, name):
                raise Conflict(f"{self.kind.capitalize()} {name!r} already exists")
        try:
            await self._append(key, events.NAME_CLAIMED, payload, meta, last)
        except WrongSequence as exc:
            raise Conflict(f"{self.kind.capitalize()} {name!r} already exists") from exc

    async def _append(
        self,
        key: str,
        event_type: str,
        payload: dict[str, str],
        meta: dict[str, str | None],
        last: StoredEvent | None,
    ) -> None:
        """Append to the name's subject, expecting ``last`` to be its newest event."""
        event = Event(
            type=event_type,
            aggregate=NAME_AGGREGATE,
            aggregate_id=key,
            version=(last.event.version + 1) if last else 1,
            payload=payload,
            **meta,
        )
        await self.store.append([event], expected_seq=last.seq if last else 0)

    async def release(self, scope: str, name: str, owner: str, meta: dict[str, str | None]) -> None:
        """Give up ``name`` if ``owner`` still holds it."""
        key = name_key(self.kind, scope, name)
        last = await self.store.last(subjects.event(NAME_AGGREGATE, key))
        if last is None or last.event.type != events.NAME_CLAIMED:
            return
        if last.event.payload["owner"] != owner:
            return
        payload = {"kind": self.kind, "scope": scope, "name": name, "owner": owner}
        try:
            await self._append(key, events.NAME_RELEASED, payload, meta, last)
        except WrongSequence:
            return  # someone else claimed it after us: nothing of ours to release
