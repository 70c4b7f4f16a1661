"""What every handler shares, stored once on the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.eventlog import LogReader
from gateway.hub import EventHub
from gateway.operations import OperationsView
from schemas.client import Bus
from schemas.lxd.server import Server


@dataclass
class GatewayState:
    """The bus, the log-fed read models, and the static server description."""

    bus: Bus
    operations: OperationsView
    hub: EventHub
    reader: LogReader
    server: Server
    #: Pre-rendered ``GET /1.0`` bodies by project (the hot path does no work per request).
    rendered: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


STATE = web.AppKey("warren_gateway_state", GatewayState)


def state(request: web.Request) -> GatewayState:
    return request.app[STATE]
