"""Request and reply envelopes for commands and queries on the bus."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.errors import WarrenError, from_code


class RequestMeta(BaseModel):
    """Who asks, on whose behalf, as part of which LXD operation."""

    requestor: str = "unknown"
    project: str = "default"
    correlation_id: str | None = None
    causation_id: str | None = None
    if_match: str | None = None


class Request(BaseModel):
    """A command or query: metadata plus a body validated by the handler's own model."""

    meta: RequestMeta = Field(default_factory=RequestMeta)
    body: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """An error as it crosses the bus."""

    code: int
    message: str


class Reply(BaseModel):
    """A handler's answer: either ``result`` or ``error``. ``seq`` is the last stream
    sequence the answer reflects (the append, for a command)."""

    result: Any = None
    error: ErrorBody | None = None
    seq: int = 0

    def unwrap(self) -> Any:
        """Return the result or raise the error it carries."""
        if self.error is not None:
            raise from_code(self.error.code, self.error.message)
        return self.result

    @classmethod
    def failure(cls, exc: WarrenError) -> Reply:
        return cls(error=ErrorBody(code=int(exc.code), message=exc.message))
