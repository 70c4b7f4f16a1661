"""The command handler shape: load -> decide (pure) -> append with expected sequence.

On a concurrent write the append fails with "wrong last sequence"; the handler reloads the
fresh state and decides again, so the loser either succeeds on fresh state or gets the
decision's own error (a 412 on a stale ETag, a 409 on a name taken) - never a lost update.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

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
