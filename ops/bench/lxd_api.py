"""A kept-alive client for an LXD-API unix socket (Warren's or the real LXD's) with the
operation plumbing the container benchmarks need: async calls waited for on
``/1.0/operations/<id>/wait``, errors raised as :class:`ApiError`, and the busybox test image
built and uploaded.
"""

from __future__ import annotations

import hashlib
import http.client
from pathlib import Path
from typing import Any

from benchkit import UnixHTTPConnection, add_repo_to_path, http_call

OP_TIMEOUT = 300.0


class ApiError(RuntimeError):
    pass


def error_of(body: Any) -> str:
    """The error text of a reply body, short."""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("status") or body)[:300]
    return str(body)[:300]


class Api:
    """One kept-alive connection; a server that closed it gets one retry on a new one."""

    def __init__(self, socket_path: str, timeout: float = OP_TIMEOUT + 30) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.conn = UnixHTTPConnection(socket_path, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def call(
        self, method: str, path: str, body: Any = None, data: bytes | None = None
    ) -> tuple[int, Any, float]:
        """Status, decoded body and seconds from send to the reply's last byte."""
        try:
            resp = http_call(self.conn, method, path, body, data)
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = UnixHTTPConnection(self.socket_path, timeout=self.timeout)
            resp = http_call(self.conn, method, path, body, data)
        return resp.status, resp.body, resp.elapsed_s

    def sync(self, method: str, path: str, body: Any = None) -> Any:
        """A synchronous call's metadata; raise unless it succeeded."""
        status, reply, _ = self.call(method, path, body)
        if not 200 <= status < 300:
            raise ApiError(f"{method} {path} -> {status} {error_of(reply)}")
        return reply.get("metadata") if isinstance(reply, dict) else reply

    def wait(self, reply: Any) -> dict[str, Any]:
        """Wait for the operation of an async reply; raise unless it succeeded."""
        if not isinstance(reply, dict):
            return {}
        op = reply.get("operation")
        if not op:
            return reply.get("metadata") or {}  # a sync reply: nothing to wait for
        status, body, _ = self.call("GET", f"{op}/wait?timeout={int(OP_TIMEOUT)}")
        meta = (body or {}).get("metadata") or {}
        if status != 200 or meta.get("status") != "Success":
            raise ApiError(f"operation {op}: {meta.get('err') or error_of(body)}")
        return meta

    def run(
        self, method: str, path: str, body: Any = None, data: bytes | None = None
    ) -> dict[str, Any]:
        """An async call and its operation, waited for."""
        status, reply, _ = self.call(method, path, body, data)
        if not 200 <= status < 300:
            raise ApiError(f"{method} {path} -> {status} {error_of(reply)}")
        return self.wait(reply)


def server_pid(socket_path: str) -> int | None:
    """The daemon's pid as ``GET /1.0`` reports it (``environment.server_pid``)."""
    api = Api(socket_path, timeout=10)
    try:
        env = (api.sync("GET", "/1.0") or {}).get("environment") or {}
        return env.get("server_pid")
    finally:
        api.close()


def import_busybox(api: Api, workdir: Path) -> tuple[str, bool]:
    """Build the busybox image and upload it; return its fingerprint and whether this call
    uploaded it (and so should delete it again)."""
    add_repo_to_path()
    from services.image.builders.busybox import build_busybox

    data = Path(build_busybox(workdir).path).read_bytes()
    fingerprint = hashlib.sha256(data).hexdigest()
    status, _, _ = api.call("GET", f"/1.0/images/{fingerprint}")
    if status == 200:
        return fingerprint, False
    api.run("POST", "/1.0/images", data=data)
    return fingerprint, True
