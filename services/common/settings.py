"""Process settings read from the environment (set by the supervisor)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel


class Settings(BaseModel):
    """Where state lives and how to reach the bus."""

    warren_dir: Path
    nats_url: str
    node: str
    #: The managed bridge a node makes on its first start (``lxdbr0`` in LXD); the default
    #: profile's ``eth0`` uses it. Host interface names are global: two Warrens on one
    #: machine need different ones.
    default_network: str = "warrenbr0"

    @property
    def snapshot_dir(self) -> Path:
        return self.warren_dir / "snapshots"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            warren_dir=Path(os.environ.get("WARREN_DIR", "/var/lib/warren")),
            nats_url=os.environ.get("WARREN_NATS_URL", "nats://127.0.0.1:4222"),
            node=os.environ.get("WARREN_NODE") or socket.gethostname().split(".")[0],
            default_network=os.environ.get("WARREN_DEFAULT_NETWORK", "warrenbr0"),
        )
