"""LXD events as ``/1.0/events`` sends them (``lxc monitor`` prints these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventType = Literal["operation", "lifecycle", "logging"]
EVENT_TYPES: tuple[str, ...] = ("operation", "lifecycle", "logging")


class LifecycleRequestor(BaseModel):
    """Who caused a lifecycle event."""

    username: str = ""
    protocol: str = ""
    address: str = ""


class Lifecycle(BaseModel):
    """``metadata`` of a lifecycle event."""

    action: str
    source: str
    context: dict[str, Any] | None = None
    requestor: LifecycleRequestor | None = None

    def to_lxd(self) -> dict[str, Any]:
        # LXD omits an empty context and a missing requestor.
        return self.model_dump(exclude_none=True)


class Logging(BaseModel):
    """``metadata`` of a logging event."""

    message: str
    level: str
    context: dict[str, str] = Field(default_factory=dict)


class Event(BaseModel):
    """One message on the events websocket."""

    type: EventType
    timestamp: str
    metadata: dict[str, Any]
    location: str = "none"
    project: str = ""

    def to_lxd(self) -> dict[str, Any]:
        data = self.model_dump()
        if not self.project:
            # LXD leaves the project out of events that belong to none (logging).
            del data["project"]
        return data
