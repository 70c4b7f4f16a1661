"""Reactions: side effects triggered by events, recorded as further events.

A reaction is a durable JetStream consumer shared by all replicas of a service (each event
goes to one of them). It acks only after the effect is recorded in the log, so a crash means
redelivery, and redelivery is harmless: the effect event's id is derived from the trigger's
id (JetStream drops the duplicate append) and ``is_done`` lets the reaction skip work whose
outcome is already in the log.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import ABC, abstractmethod
from typing import Any

from nats.js import api
from nats.js.errors import FetchTimeoutError

from schemas import subjects
from schemas.envelope import StoredEvent
from services.common.eventstore import EventStore, decode_msg

log = logging.getLogger(__name__)

_EFFECT_NAMESPACE = uuid.UUID("5b0c9f8e-6d1f-4a53-9c51-2f1f5d6a9e11")


def effect_event_id(trigger_event_id: str, reaction: str, step: str = "") -> str:
    """A deterministic id for the event recording ``reaction``'s effect of one trigger."""
    return str(uuid.uuid5(_EFFECT_NAMESPACE, f"{trigger_event_id}/{reaction}/{step}"))


class Reaction(ABC):
    """One kind of side effect. Subclasses name it and say which events trigger it."""

    name: str
    filter_subject: str = subjects.ALL_EVENTS

    @abstractmethod
    def triggers(self, stored: StoredEvent) -> bool:
        """Whether this event calls for the effect."""

    @abstractmethod
    async def is_done(self, stored: StoredEvent) -> bool:
        """Whether the log already records this trigger's effect (a redelivery)."""

    @abstractmethod
    async def react(self, stored: StoredEvent) -> None:
        """Perform the effect and append the event recording it."""


class ReactionRunner:
    """Pulls a reaction's durable consumer and acks each event once its effect is recorded."""

    def __init__(self, store: EventStore, reaction: Reaction, durable_prefix: str) -> None:
        self.store = store
        self.reaction = reaction
        self.durable = f"{durable_prefix}-{reaction.name}"
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self.handled = 0

    async def start(self) -> None:
        config = api.ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=-1,
            filter_subject=self.reaction.filter_subject,
        )
        self._sub = await self.store.js.pull_subscribe(
            self.reaction.filter_subject,
            durable=self.durable,
            stream=subjects.EVENTS_STREAM,
            config=config,
        )
        self._task = asyncio.create_task(self._loop(), name=self.durable)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # connection already gone
                log.debug("unsubscribe failed: %s", exc)
            self._sub = None

    async def _loop(self) -> None:
        while True:
            try:
                msgs = await self._sub.fetch(64, timeout=1.0)
            except (FetchTimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnecting: try again shortly
                log.warning("%s: fetch failed: %s", self.durable, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._handle(msg)

    async def _handle(self, msg: Any) -> None:
        stored = decode_msg(msg.metadata.sequence.stream, msg.data)
        try:
            if self.reaction.triggers(stored) and not await self.reaction.is_done(stored):
                await self.reaction.react(stored)
                self.handled += 1
            await msg.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reaction to %s failed; will retry", self.durable, stored.seq)
            await msg.nak(delay=1.0)
