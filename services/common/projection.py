"""Read models rebuilt from the log, with snapshots so start-up stays fast as the log grows.

A projection follows the whole stream in order (so its ``applied_seq`` is a stream sequence
and read-after-write is a simple barrier), skipping subjects it does not care about without
decoding them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from nats.js import api

from schemas import codec, subjects
from schemas.envelope import StoredEvent
from schemas.errors import Unavailable
from services.common.eventstore import EventStore, decode_msg

log = logging.getLogger(__name__)


class Projection(ABC):
    """Subclasses fold events into in-memory state and can dump/load that state."""

    #: Name of the snapshot file; bump ``snapshot_version`` when the state shape changes.
    name: str = "projection"
    snapshot_version: int = 1
    #: Aggregate types this projection folds; others are skipped undecoded.
    aggregates: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.applied_seq = 0
        self._advanced = asyncio.Event()
        self._prefixes = tuple(f"{subjects.EVENTS_PREFIX}.{a}." for a in self.aggregates)

    @abstractmethod
    def apply(self, stored: StoredEvent) -> None:
        """Fold one event (pure state change, no I/O)."""

    @abstractmethod
    def dump(self) -> Any:
        """Plain data describing the whole state, for a snapshot."""

    @abstractmethod
    def load(self, state: Any) -> None:
        """Restore the state from :meth:`dump` output."""

    def wants(self, subject: str) -> bool:
        return subject.startswith(self._prefixes)

    def restored(self, seq: int) -> None:
        """The state was loaded from a snapshot covering ``seq``: wake whoever waits."""
        self.applied_seq = seq
        self._advanced.set()

    def feed(self, seq: int, subject: str, data: bytes) -> None:
        """Apply one raw stream message (skipped if older than what is applied)."""
        if seq <= self.applied_seq:
            return
        if self.wants(subject):
            self.apply(decode_msg(seq, data))
        self.applied_seq = seq
        self._advanced.set()

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        """Wait until every event up to ``seq`` is applied."""
        deadline = time.monotonic() + timeout
        while self.applied_seq < seq:
            self._advanced.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(
                    f"{self.name} is behind the event log ({self.applied_seq} < {seq})"
                )
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                continue


class ProjectionRunner:
    """Restores a projection from its snapshot, replays the rest, then follows live events."""

    def __init__(
        self,
        store: EventStore,
        projection: Projection,
        snapshot_dir: Path | None,
        snapshot_every: int = 10_000,
    ) -> None:
        self.store = store
        self.projection = projection
        self.snapshot_path = (
            snapshot_dir / f"{projection.name}.msgpack" if snapshot_dir is not None else None
        )
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._caught_up = False
        self._sub: Any = None

    async def start(self) -> None:
        """Return once the projection has caught up with the log as it was at start."""
        self._restore_snapshot()
        target = await self.store.last_seq()
        await self._follow()
        await self.projection.wait_for(target, timeout=600)
        self._caught_up = True
        self.save_snapshot()

    async def barrier(self) -> int:
        """Wait until everything committed so far is applied (read-your-writes)."""
        target = await self.store.last_seq()
        await self.projection.wait_for(target)
        return target

    async def _follow(self) -> None:
        async def on_msg(msg: Any) -> None:
            self.projection.feed(msg.metadata.sequence.stream, msg.subject, msg.data)
            self._since_snapshot += 1
            # During the first catch-up one snapshot at the end is enough.
            if self._caught_up and self._since_snapshot >= self.snapshot_every:
                self.save_snapshot()

        start = self.projection.applied_seq + 1
        self._sub = await self.store.js.subscribe(
            subjects.ALL_EVENTS,
            stream=subjects.EVENTS_STREAM,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=start),
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # connection already gone
                log.debug("unsubscribe failed: %s", exc)
        self.save_snapshot()

    def _restore_snapshot(self) -> None:
        path = self.snapshot_path
        if path is None or not path.exists():
            return
        try:
            data = codec.unpack(path.read_bytes())
            if data.get("version") != self.projection.snapshot_version:
                log.info("%s: snapshot version changed, replaying from scratch", path)
                return
            self.projection.load(data["state"])
            self.projection.restored(int(data["seq"]))
            log.info("%s: restored snapshot at seq %d", self.projection.name, data["seq"])
        except Exception as exc:  # a snapshot is a cache: a bad one only costs a replay
            log.warning("%s: unreadable snapshot (%s), replaying from scratch", path, exc)
            self.projection.load(None)
            self.projection.applied_seq = 0

    def save_snapshot(self) -> None:
        """Write the state atomically with the stream sequence it covers."""
        self._since_snapshot = 0
        path = self.snapshot_path
        if path is None or self.projection.applied_seq == 0:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = codec.pack(
            {
                "version": self.projection.snapshot_version,
                "seq": self.projection.applied_seq,
                "state": self.projection.dump(),
            }
        )
        # Replicas sharing a WARREN_DIR write the same snapshot: each uses its own temp file.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
