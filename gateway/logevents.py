"""LXD ``logging`` events the gateway produces, shaped and levelled as LXD 5.0 sends them.

LXD streams its whole log to ``logging`` listeners whatever the daemon's own log level, so
``lxc monitor --type=logging`` shows "Handling API request" (debug) for every API call,
"Sending top level 404" (info) for an unknown path, its event listeners coming and going
(debug) and its operations' transitions (debug, see :mod:`gateway.operation_events`). The
gateway sends the same, plus its own Python log records from info up.

Nothing here runs unless a listener wants ``logging`` events (:meth:`EventHub.wants`, one
dict lookup): a request costs that lookup and nothing more while nobody listens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from gateway import context
from gateway.hub import EventHub, timestamp
from schemas.lxd.event import Event

LOGGING = "logging"
#: LXD's (logrus) level names; ``lxc monitor --pretty --loglevel=`` parses them.
DEBUG, INFO = "debug", "info"
#: What LXD reports as the address and protocol of a unix socket peer.
UNIX_ADDRESS, UNIX_PROTOCOL = "@", "unix"


def logging_event(
    message: str, level: str, ctx: dict[str, str], when: datetime | None = None
) -> Event:
    """One LXD logging event (it belongs to no project, so every listener may get it)."""
    return Event(
        type=LOGGING,
        timestamp=timestamp(when),
        metadata={"context": ctx, "level": level, "message": message},
    )


def api_request(request: web.Request) -> Event:
    """LXD's "Handling API request", logged when a request reaches a route."""
    return logging_event(
        "Handling API request",
        DEBUG,
        {
            "ip": UNIX_ADDRESS,
            "method": request.method,
            "protocol": UNIX_PROTOCOL,
            "url": request.raw_path,
            "username": context.requestor(request),
        },
    )


def top_level_404(request: web.Request) -> Event:
    """LXD's "Sending top level 404", logged instead when no route matches the path."""
    return logging_event(
        "Sending top level 404",
        INFO,
        {"method": request.method, "remote": UNIX_ADDRESS, "url": request.raw_path},
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def request_logging(hub: EventHub) -> Middleware:
    """The middleware logging each request as LXD does, while a listener wants it."""

    @web.middleware
    async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        if hub.wants(LOGGING):
            unmatched = isinstance(request.match_info.http_exception, web.HTTPNotFound)
            hub.publish(top_level_404(request) if unmatched else api_request(request))
        return await handler(request)

    return log_request


def listener_started(hub: EventHub, listener_id: str, local: str) -> None:
    """LXD's "Event listener server handler started" (the new listener gets it too)."""
    if hub.wants(LOGGING):
        ctx = {"id": listener_id, "local": local, "remote": UNIX_ADDRESS}
        hub.publish(logging_event("Event listener server handler started", DEBUG, ctx))


def listener_stopped(hub: EventHub, listener_id: str, local: str) -> None:
    if hub.wants(LOGGING):
        ctx = {"listener": listener_id, "local": local, "remote": UNIX_ADDRESS}
        hub.publish(logging_event("Event listener server handler stopped", DEBUG, ctx))


#: Python level names -> the logrus names LXD (and ``lxc monitor --loglevel``) use.
_LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}


class HubLogHandler(logging.Handler):
    """Sends the gateway's own log records (info and up) as LXD ``logging`` events."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.hub = hub
        self.loop = loop
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.wants(LOGGING):
            return
        try:
            level = _LEVELS.get(record.levelname, record.levelname.lower())
            when = datetime.fromtimestamp(record.created, UTC)
            event = logging_event(record.getMessage(), level, {"logger": record.name}, when)
        except Exception:
            self.handleError(record)
            return
        if threading.get_ident() == self._thread:
            self.hub.publish(event)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.hub.publish, event)
