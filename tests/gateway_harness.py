"""A gateway in the test's own event loop, and an HTTP client over its unix socket.

Used by the gateway's integration tests (and handy for anyone who needs a gateway against a
test nats-server without starting the whole stack).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from gateway.app import Gateway
from gateway.state import GatewaySettings, GatewayState


class GatewayHarness:
    """Start a :class:`Gateway` on a fresh socket; talk LXD to it; stop it."""

    def __init__(self, nats_url: str, node: str = "test", retention_s: float = 600.0) -> None:
        # Unix socket paths must stay under 108 bytes: pytest's tmp_path can be too long.
        self.dir = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
        self.settings = GatewaySettings(
            warren_dir=self.dir,
            nats_url=nats_url,
            socket_path=self.dir / "unix.socket",
            node=node,
            operations_retention_s=retention_s,
        )
        self.gateway = Gateway(self.settings)
        self.session: aiohttp.ClientSession | None = None

    @property
    def socket(self) -> Path:
        return self.settings.socket_path

    @property
    def state(self) -> GatewayState:
        assert self.gateway.state is not None
        return self.gateway.state

    async def start(self, wait_ready: bool = True) -> GatewayHarness:
        await self.gateway.start()
        if wait_ready:
            await self.state.reader.wait_ready(timeout=30)
        connector = aiohttp.UnixConnector(path=str(self.socket))
        self.session = aiohttp.ClientSession(connector=connector)
        return self

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.gateway.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, CIMultiDict[str], Any]:
        """``(status, headers, JSON body)``; ``body`` may be JSON-able data or raw str/bytes."""
        assert self.session is not None
        data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        async with self.session.request(
            method, f"http://warren{path}", data=data, headers=headers
        ) as resp:
            raw = await resp.read()
            parsed = json.loads(raw) if raw else None
            return resp.status, CIMultiDict(resp.headers), parsed

    async def get(self, path: str) -> Any:
        """GET and return ``metadata``, insisting on a sync 200."""
        status, _, data = await self.request("GET", path)
        assert status == 200 and data["type"] == "sync", (path, status, data)
        return data["metadata"]

    async def websocket(self, path: str) -> aiohttp.ClientWebSocketResponse:
        assert self.session is not None
        return await self.session.ws_connect(f"http://warren{path}")
