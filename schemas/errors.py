"""The error model shared by services and the gateway.

Errors cross the bus as an HTTP-like code plus a message; the gateway's status table turns
them into LXD error responses.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes an error may carry across the bus."""

    BAD_REQUEST = 400
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    CONFLICT = 409
    PRECONDITION_FAILED = 412
    INTERNAL = 500
    NOT_IMPLEMENTED = 501
    UNAVAILABLE = 503


class WarrenError(Exception):
    """An error with a code the caller can act on."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = _known(int(code))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}, {self.message!r})"


class BadRequest(WarrenError):
    code = ErrorCode.BAD_REQUEST


class Forbidden(WarrenError):
    code = ErrorCode.FORBIDDEN


class NotFound(WarrenError):
    code = ErrorCode.NOT_FOUND


class Conflict(WarrenError):
    code = ErrorCode.CONFLICT


class PreconditionFailed(WarrenError):
    code = ErrorCode.PRECONDITION_FAILED


class Unavailable(WarrenError):
    code = ErrorCode.UNAVAILABLE


class NotImplementedYet(WarrenError):
    """A valid LXD request for something Warren does not do (yet): 501."""

    code = ErrorCode.NOT_IMPLEMENTED


def _known(code: int) -> ErrorCode:
    """The code itself if Warren knows it, else the generic one of its class (4xx or 5xx)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.BAD_REQUEST if 400 <= code < 500 else ErrorCode.INTERNAL


_BY_CODE: dict[int, type[WarrenError]] = {
    cls.code.value: cls
    for cls in (
        BadRequest,
        Forbidden,
        NotFound,
        Conflict,
        PreconditionFailed,
        Unavailable,
        NotImplementedYet,
    )
}


def from_code(code: int, message: str) -> WarrenError:
    """Rebuild the matching error class from a code received over the bus."""
    cls = _BY_CODE.get(code, WarrenError)
    return cls(message, code)
