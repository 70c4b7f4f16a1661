"""The envelope every event carries in the log (DESIGN.md section 3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas import subjects


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One fact in the log. ``event_id`` doubles as the ``Nats-Msg-Id`` header."""

    event_id: str = Field(default_factory=new_id)
    type: str
    schema_version: int = 1
    aggregate: str
    aggregate_id: str
    version: int = 0
    project: str = "default"
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = None
    causation_id: str | None = None
    requestor: str = "unknown"
    node: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def subject(self) -> str:
        return subjects.event(self.aggregate, self.aggregate_id)


class StoredEvent(BaseModel):
    """An event as read back from the stream, with its stream sequence."""

    seq: int
    event: Event
