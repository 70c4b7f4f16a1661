"""The gateway's settings (from the environment) and what every handler shares at run time."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.eventlog import LogReader
from gateway.hub import EventHub
from gateway.operations import RETENTION_S, OperationsView
from schemas.client import Bus
from schemas.lxd.server import Server


class GatewaySettings(BaseModel):
    """Where to listen and how to reach the bus."""

    warren_dir: Path
    nats_url: str
    socket_path: Path
    node: str
    #: How long finished operations stay listed, in seconds (LXD's 5).
    operations_retention_s: float = RETENTION_S

    @classmethod
    def from_env(cls) -> GatewaySettings:
        warren_dir = Path(os.environ.get("WARREN_DIR", "/var/lib/warren"))
        return cls(
            warren_dir=warren_dir,
            nats_url=os.environ.get("WARREN_NATS_URL", "nats://127.0.0.1:4222"),
            socket_path=Path(os.environ.get("WARREN_SOCKET") or warren_dir / "unix.socket"),
            node=os.environ.get("WARREN_NODE") or socket.gethostname().split(".")[0],
        )


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
