"""A small LXD API client over the unix socket, on the standard library only (fast start-up)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_DIR = "/var/lib/warren"


class ApiError(Exception):
    """An LXD error response (or no response at all)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def socket_path(explicit: str | None = None) -> Path:
    """Where the API listens: --socket, WARREN_SOCKET, $WARREN_DIR, LXD_SOCKET, the default."""
    env = os.environ
    if explicit:
        return Path(explicit)
    if env.get("WARREN_SOCKET"):
        return Path(env["WARREN_SOCKET"])
    if env.get("WARREN_DIR"):
        return Path(env["WARREN_DIR"]) / "unix.socket"
    if env.get("LXD_SOCKET"):
        return Path(env["LXD_SOCKET"])
    return Path(DEFAULT_DIR) / "unix.socket"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("warren", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


class Client:
    """GET LXD resources and unwrap their sync envelope."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        """The ``metadata`` of a sync response; :class:`ApiError` for anything else."""
        target = path + (f"?{urlencode(query)}" if query else "")
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", target)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as exc:
            raise ApiError(f"cannot reach Warren at {self.path}: {exc}") from exc
        finally:
            conn.close()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(f"not an LXD response ({resp.status})", resp.status) from exc
        if body.get("type") == "error" or resp.status >= 400:
            raise ApiError(body.get("error") or f"HTTP {resp.status}", resp.status)
        return body.get("metadata")

    def history(
        self,
        kind: str,
        name: str,
        project: str | None = None,
        at: str | None = None,
        object_id: str | None = None,
    ) -> dict[str, Any]:
        """``GET /1.0/history/<kind>/<name>`` (the ``warren_history`` extension)."""
        pairs = (("project", project), ("at", at), ("id", object_id))
        query = {k: v for k, v in pairs if v}
        return self.get(f"/1.0/history/{quote(kind, safe='')}/{quote(name, safe='')}", query)

    def history_names(self, kind: str, project: str | None = None) -> list[dict[str, Any]]:
        """``GET /1.0/history/<kind>?recursion=1``: each name and the objects that had it."""
        query = {"recursion": "1", **({"project": project} if project else {})}
        return self.get(f"/1.0/history/{quote(kind, safe='')}", query)
