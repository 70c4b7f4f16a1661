"""Gateway settings from the environment (set by the supervisor or by hand)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel


class GatewaySettings(BaseModel):
    """Where to listen and how to reach the bus."""

    warren_dir: Path
    nats_url: str
    socket_path: Path
    node: str
    #: How long finished operations stay listed (LXD forgets them quickly; we keep a while).
    operations_retention_s: float = 600.0

    @classmethod
    def from_env(cls) -> GatewaySettings:
        warren_dir = Path(os.environ.get("WARREN_DIR", "/var/lib/warren"))
        return cls(
            warren_dir=warren_dir,
            nats_url=os.environ.get("WARREN_NATS_URL", "nats://127.0.0.1:4222"),
            socket_path=Path(os.environ.get("WARREN_SOCKET") or warren_dir / "unix.socket"),
            node=os.environ.get("WARREN_NODE") or socket.gethostname().split(".")[0],
        )
