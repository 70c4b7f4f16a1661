"""The event store: the JetStream stream ``EVENTS`` is the single source of truth.

``append`` is the commit. It sets ``Nats-Msg-Id`` (so a retried publish is deduplicated) and
``Nats-Expected-Last-Subject-Sequence`` (so a writer that decided on stale state loses).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from schemas import codec, subjects
from schemas.envelope import Event, StoredEvent
from schemas.errors import Conflict, Unavailable
from schemas.events import upcast

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
NO_MESSAGE_FOUND = 10037
DUPLICATE_WINDOW_S = 120.0


def stream_config(replicas: int = 1) -> api.StreamConfig:
    """The definition of the event log, as code."""
    return api.StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.ALL_EVENTS],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        discard=api.DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
        allow_direct=True,
    )


class WrongSequence(Conflict):
    """The aggregate moved on since it was loaded: reload and decide again."""


def decode_msg(seq: int, data: bytes) -> StoredEvent:
    """Decode a stream message into an upcast event with its sequence."""
    return StoredEvent(seq=seq, event=upcast(codec.decode(Event, data)))


class EventStore:
    """Append, load one aggregate, and replay the stream."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def ensure_stream(self, replicas: int = 1) -> None:
        """Create the stream if missing (idempotent; safe from many processes at once)."""
        config = stream_config(replicas)
        try:
            await self.js.stream_info(config.name)
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except APIError as exc:
                if "already in use" not in str(exc):
                    raise

    async def append(self, events: Sequence[Event], expected_seq: int | None) -> int:
        """Append events of one aggregate, in order; return the stream sequence of the last.

        ``expected_seq`` is the stream sequence of the last event folded into the state the
        events were decided on (0 for a new aggregate); ``None`` skips the check.
        """
        seq = 0
        expected = expected_seq
        for event in events:
            headers = {"Nats-Msg-Id": event.event_id}
            if expected is not None:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
            seq = await self._publish(event, headers)
            expected = seq
        return seq

    async def _publish(self, event: Event, headers: dict[str, str]) -> int:
        data = codec.encode(event)
        last_exc: Exception | None = None
        for attempt in range(20):
            try:
                ack = await self.js.publish(event.subject, data, timeout=5, headers=headers)
                return ack.seq
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise WrongSequence(
                        f"{event.aggregate} changed concurrently; reload and retry"
                    ) from exc
                raise Unavailable(f"event log refused the append: {exc.description}") from exc
            except TimeoutError as exc:
                # The same Nats-Msg-Id makes a retry safe: JetStream drops the duplicate.
                log.warning("append of %s timed out (attempt %d)", event.event_id, attempt + 1)
                last_exc = exc
                await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
        raise Unavailable("event log did not acknowledge the append") from last_exc

    async def last(self, subject: str) -> StoredEvent | None:
        """The newest event on one subject, or None."""
        try:
            msg = await self.js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except NotFoundError:
            return None
        except APIError as exc:
            if exc.err_code == NO_MESSAGE_FOUND:
                return None
            raise
        return decode_msg(msg.seq, msg.data)

    async def last_seq(self) -> int:
        """The stream's last sequence: everything up to it is committed."""
        info = await self.js.stream_info(subjects.EVENTS_STREAM)
        return info.state.last_seq

    async def load(self, subject: str) -> list[StoredEvent]:
        """Every event on one subject, oldest first."""
        return [stored async for stored in self.replay(subject)]

    async def replay(
        self, subject: str = subjects.ALL_EVENTS, start_seq: int = 1, batch: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        """Iterate the stored events matching ``subject`` from ``start_seq`` up to now."""
        async for seq, data in self.replay_raw(subject, start_seq, batch):
            yield decode_msg(seq, data)

    async def replay_raw(
        self, subject: str = subjects.ALL_EVENTS, start_seq: int = 1, batch: int = 1000
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Like :meth:`replay` without decoding: ``(seq, data)`` pairs."""
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start_seq, 1),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            filter_subject=subject,
        )
        sub = await self.js.pull_subscribe(
            subject, durable=None, stream=subjects.EVENTS_STREAM, config=config
        )
        try:
            pending = (await sub.consumer_info()).num_pending
            while pending > 0:
                msgs = await sub.fetch(min(batch, pending), timeout=5)
                for msg in msgs:
                    yield msg.metadata.sequence.stream, msg.data
                pending = msgs[-1].metadata.num_pending
        finally:
            await sub.unsubscribe()
