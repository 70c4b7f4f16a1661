"""THE status table: every error the gateway returns is shaped here, and only here.

Errors come from three places: WarrenError codes carried back over the bus, aiohttp's own
routing and parsing failures, and anything unexpected. Each is turned into an LXD error
response (``type: error``, ``error_code`` equal to the HTTP status).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from gateway import responses
from schemas.errors import ErrorCode, WarrenError

log = logging.getLogger(__name__)


class Status(NamedTuple):
    """An HTTP status and the message LXD uses when there is nothing more specific."""

    http: int
    message: str


#: WarrenError code -> LXD error response. LXD answers a method a path does not support with
#: 501 "not implemented" (not 405), so METHOD_NOT_ALLOWED maps there too.
STATUS_TABLE: dict[ErrorCode, Status] = {
    ErrorCode.BAD_REQUEST: Status(400, "bad request"),
    ErrorCode.FORBIDDEN: Status(403, "not authorized"),
    ErrorCode.NOT_FOUND: Status(404, "not found"),
    ErrorCode.METHOD_NOT_ALLOWED: Status(501, "not implemented"),
    ErrorCode.CONFLICT: Status(409, "conflict"),
    ErrorCode.PRECONDITION_FAILED: Status(412, "precondition failed"),
    ErrorCode.INTERNAL: Status(500, "internal server error"),
    ErrorCode.NOT_IMPLEMENTED: Status(501, "not implemented"),
    ErrorCode.UNAVAILABLE: Status(503, "service unavailable"),
}

#: aiohttp's own failures (routing, bodies) -> the WarrenError code they stand for.
HTTP_CASES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BAD_REQUEST,
}


def status_of(code: int) -> Status:
    """The LXD status for a WarrenError code (unknown codes fall back by class)."""
    try:
        return STATUS_TABLE[ErrorCode(code)]
    except (ValueError, KeyError):
        return STATUS_TABLE[ErrorCode.BAD_REQUEST if 400 <= code < 500 else ErrorCode.INTERNAL]


def error_response(code: int, message: str = "") -> web.Response:
    """The LXD error response for a WarrenError code and message."""
    status = status_of(code)
    return responses.error(status.http, message or status.message)


def from_exception(exc: BaseException) -> web.Response:
    """Shape any exception into an LXD error response."""
    if isinstance(exc, WarrenError):
        return error_response(exc.code, exc.message)
    if isinstance(exc, web.HTTPException):
        code = HTTP_CASES.get(exc.status)
        if code is None:
            code = ErrorCode.BAD_REQUEST if exc.status < 500 else ErrorCode.INTERNAL
        # aiohttp's texts ("Not Found", "Method Not Allowed") are replaced by LXD's own.
        detail = exc.text if code is ErrorCode.BAD_REQUEST and exc.text else ""
        return error_response(code, detail)
    log.exception("unexpected error", exc_info=exc)
    return error_response(ErrorCode.INTERNAL, f"internal error: {exc}")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def lxd_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure of a handler into an LXD error response."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are not errors
        return from_exception(exc)
    except WarrenError as exc:
        return from_exception(exc)
    except Exception as exc:
        return from_exception(exc)
