"""The three LXD response envelopes: sync, async (an operation) and error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class SyncResponse(BaseModel):
    """``type: sync``; HTTP 200 (or 201 with a Location for creations)."""

    type: Literal["sync"] = "sync"
    status: str = "Success"
    status_code: int = 200
    operation: str = ""
    error_code: int = 0
    error: str = ""
    metadata: Any = None


class AsyncResponse(BaseModel):
    """``type: async``; HTTP 202 with ``Location: /1.0/operations/<id>``."""

    type: Literal["async"] = "async"
    status: str = "Operation created"
    status_code: int = 100
    operation: str
    error_code: int = 0
    error: str = ""
    metadata: dict[str, Any]


class ErrorResponse(BaseModel):
    """``type: error``; the HTTP status equals ``error_code``."""

    type: Literal["error"] = "error"
    status: str = ""
    status_code: int = 0
    operation: str = ""
    error_code: int
    error: str
    metadata: Any = None
