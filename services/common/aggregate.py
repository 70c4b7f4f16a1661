"""The command handler shape: load -> decide (pure) -> append with expected sequence.

On a concurrent write the append fails with "wrong last sequence"; the handler reloads the
fresh state and decides again, so the loser either succeeds on fresh state or gets the
decision's own error (a 412 on a stale ETag, a 409 on a name taken) - never a lost update.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.envelope import Event
from schemas.errors import Conflict
from services.common.eventstore import EventStore, WrongSequence

log = logging.getLogger(__name__)

#: Returns the events to append and the stream sequence they were decided on (0: new).
Decision = Callable[[], Awaitable[tuple[Sequence[Event], int]]]


async def decide_and_append(store: EventStore, decide: Decision, attempts: int = 8) -> int:
    """Run ``decide`` and append its events, retrying on concurrent writes.

    ``decide`` must load fresh state each time it is called (after a projection barrier).
    Returns the stream sequence of the last appended event (or the decided-on sequence when
    nothing had to change).
    """
    for attempt in range(attempts):
        events, expected = await decide()
        if not events:
            return expected
        try:
            return await store.append(events, expected_seq=expected)
        except WrongSequence:
            log.info("concurrent write on %s, deciding again (%d)", events[0].subject, attempt)
    raise Conflict("the object kept changing concurrently; try again")


@dataclass(frozen=True)
class Meta:
    """Who asked: copied onto each event a command causes."""

    requestor: str = "unknown"
    correlation_id: str | None = None
    causation_id: str | None = None
    node: str = ""


SYSTEM = Meta(requestor="warren")


def state_event(
    type_: str,
    aggregate: str,
    aggregate_id: str,
    version: int,
    payload: dict[str, Any],
    meta: Meta,
    node: str,
    event_id: str | None = None,
) -> Event:
    """The next event of an aggregate whose events carry its whole state (``version`` is the
    state's current one); ``node`` when the command's meta names none."""
    fields: dict[str, Any] = {
        "type": type_,
        "aggregate": aggregate,
        "aggregate_id": aggregate_id,
        "version": version + 1,
        "payload": payload,
        "requestor": meta.requestor,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "node": meta.node or node,
    }
    if event_id is not None:
        fields["event_id"] = event_id
    return Event(**fields)
