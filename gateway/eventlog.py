"""The gateway's read-only view of the event log.

On start it replays every operation event (the server filters ``events.operation.*``, so
replay cost grows with operations, not with the whole log), then follows the whole stream
live with an ordered consumer from the point the replay covered: operation events update the
operations view and become ``operation`` and ``logging`` events (:mod:`gateway.operation_events`);
catalog events become ``lifecycle`` events.
The gateway never appends to the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from gateway import lifecycle, operation_events
from gateway.hub import EventHub
from gateway.operations import OperationsView
from schemas import codec, subjects
from schemas.envelope import Event
from schemas.errors import Unavailable
from schemas.events import upcast

log = logging.getLogger(__name__)

OPERATION_PREFIX = f"{subjects.EVENTS_PREFIX}.{subjects.OPERATION_AGGREGATE}."
OPERATION_EVENTS = subjects.aggregate_events(subjects.OPERATION_AGGREGATE)


def decode(data: bytes) -> Event:
    """A stream message as the newest shape of its event."""
    return upcast(codec.decode(Event, data))


class LogReader:
    """Replays operations, then follows the log live, feeding the view and the hub."""

    def __init__(self, js: JetStreamContext, operations: OperationsView, hub: EventHub) -> None:
        self.js = js
        self.operations = operations
        self.hub = hub
        self.applied_seq = 0
        self.ready = asyncio.Event()
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    def start(self) -> None:
        """Begin in the background: the API serves ``/1.0`` before the log is read."""
        self._task = asyncio.create_task(self._run(), name="gateway-log-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # the connection may already be gone
                log.debug("unsubscribe failed: %s", exc)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the replay is done (503 if the log cannot be read in time)."""
        if self.ready.is_set():
            return
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError as exc:
            raise Unavailable("the event log is not readable yet") from exc

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        """Wait until every event up to ``seq`` is applied (read-your-writes after a command)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.applied_seq < seq:
            self._advanced.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(f"gateway is behind the event log ({self.applied_seq} < {seq})")
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                continue

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._catch_up_and_follow()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # NATS restarting mid-replay, say: start over (folding is idempotent).
                log.warning("reading the event log failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _catch_up_and_follow(self) -> None:
        last = await self._wait_for_stream()
        covered = await self._replay_operations(last)
        self.applied_seq = covered
        # From here the ordered consumer heals itself (it recreates its server-side consumer
        # from the last sequence it delivered after a reconnect or a gap).
        self._sub = await self.js.subscribe(
            subjects.ALL_EVENTS,
            stream=subjects.EVENTS_STREAM,
            cb=self._on_live,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=covered + 1),
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self.ready.set()
        self._advanced.set()
        log.info(
            "following the event log from seq %d (%d operations)",
            covered + 1,
            len(self.operations),
        )

    async def _wait_for_stream(self) -> int:
        """The stream's last sequence, once the stream exists (services create it)."""
        delay, said = 0.1, False
        while True:
            try:
                info = await self.js.stream_info(subjects.EVENTS_STREAM)
                return int(info.state.last_seq)
            except NotFoundError:
                if not said:
                    log.info("waiting for the %s stream to exist", subjects.EVENTS_STREAM)
                    said = True
            except Exception as exc:
                log.warning("cannot read the event log yet: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _replay_operations(self, last: int) -> int:
        """Fold every operation event; return the stream sequence the replay covers."""
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            filter_subject=OPERATION_EVENTS,
        )
        sub = await self.js.pull_subscribe(
            OPERATION_EVENTS, durable=None, stream=subjects.EVENTS_STREAM, config=config
        )
        covered = last
        try:
            pending = (await sub.consumer_info()).num_pending
            while pending > 0:
                msgs = await sub.fetch(min(pending, 1000), timeout=5)
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    self._apply_operation(decode(msg.data), publish=False)
                    covered = max(covered, seq)
                pending = msgs[-1].metadata.num_pending
        finally:
            await sub.unsubscribe()
        self.operations.prune()
        return covered

    async def _on_live(self, msg: Any) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self.applied_seq:
            return
        try:
            self._dispatch(msg.subject, msg.data)
        except Exception:
            log.exception("cannot handle event %d on %s", seq, msg.subject)
        self.applied_seq = seq
        self._advanced.set()

    def _dispatch(self, subject: str, data: bytes) -> None:
        if subject.startswith(OPERATION_PREFIX):
            self._apply_operation(decode(data), publish=True)
        elif self.hub.wants("lifecycle"):
            converted = lifecycle.lifecycle(decode(data))
            if converted is not None:
                event, extra = converted
                self.hub.publish(event, extra)

    def _apply_operation(self, event: Event, publish: bool) -> None:
        record = self.operations.apply(event)
        if record is not None and publish:
            operation_events.publish(self.hub, event, record)
