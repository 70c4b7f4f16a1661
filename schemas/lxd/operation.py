"""LXD operations: the object, its status codes, and which of them are final."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StatusCode(IntEnum):
    """LXD status codes of operations (``shared/api/status_code.go`` in LXD)."""

    OPERATION_CREATED = 100
    STARTED = 101
    STOPPED = 102
    RUNNING = 103
    CANCELLING = 104
    PENDING = 105
    STARTING = 106
    STOPPING = 107
    ABORTING = 108
    FREEZING = 109
    FROZEN = 110
    THAWED = 111
    ERROR = 112
    READY = 113
    SUCCESS = 200
    FAILURE = 400
    CANCELLED = 401


STATUS_TEXT: dict[int, str] = {
    StatusCode.OPERATION_CREATED: "Operation created",
    StatusCode.STARTED: "Started",
    StatusCode.STOPPED: "Stopped",
    StatusCode.RUNNING: "Running",
    StatusCode.CANCELLING: "Cancelling",
    StatusCode.PENDING: "Pending",
    StatusCode.STARTING: "Starting",
    StatusCode.STOPPING: "Stopping",
    StatusCode.ABORTING: "Aborting",
    StatusCode.FREEZING: "Freezing",
    StatusCode.FROZEN: "Frozen",
    StatusCode.THAWED: "Thawed",
    StatusCode.ERROR: "Error",
    StatusCode.READY: "Ready",
    StatusCode.SUCCESS: "Success",
    StatusCode.FAILURE: "Failure",
    StatusCode.CANCELLED: "Cancelled",
}


def is_final(status_code: int) -> bool:
    """Success, failure and cancelled (>= 200) end an operation, as in LXD."""
    return status_code >= 200


class Operation(BaseModel):
    """An LXD operation as ``/1.0/operations/<id>`` returns it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    class_: str = Field("task", alias="class")
    description: str = ""
    created_at: str = ""
    updated_at: str = ""
    status: str = "Running"
    status_code: int = StatusCode.RUNNING
    resources: dict[str, list[str]] | None = None
    metadata: dict[str, Any] | None = None
    may_cancel: bool = False
    err: str = ""
    location: str = "none"

    def to_lxd(self) -> dict[str, Any]:
        """The JSON object LXD clients expect (``class``, not ``class_``)."""
        return self.model_dump(by_alias=True)
