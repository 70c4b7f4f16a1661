"""LXD response envelopes as aiohttp responses: sync, async (operation) and error."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from schemas.lxd.response import AsyncResponse, ErrorResponse, SyncResponse

JSON = "application/json"


def dumps(value: Any) -> str:
    """Compact JSON, as LXD writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sync_body(metadata: Any) -> bytes:
    """The bytes of a sync envelope (used to pre-render hot responses once)."""
    return dumps(SyncResponse(metadata=metadata).model_dump()).encode()


def raw(body: bytes, status: int = 200, etag: str | None = None) -> web.Response:
    """A response from pre-rendered bytes."""
    headers = {"ETag": f'"{etag}"'} if etag else None
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def sync(
    metadata: Any = None,
    *,
    etag: str | None = None,
    location: str | None = None,
) -> web.Response:
    """``type: sync``: 200, or 201 Created with ``Location`` when an object was created."""
    headers: dict[str, str] = {}
    if etag:
        headers["ETag"] = f'"{etag}"'
    status = 200
    if location:
        headers["Location"] = location
        status = 201
    return web.Response(
        body=sync_body(metadata), status=status, content_type=JSON, headers=headers or None
    )


def empty() -> web.Response:
    """LXD's empty sync response (PUT, PATCH, DELETE): metadata ``{}``."""
    return sync({})


def operation(op: dict[str, Any]) -> web.Response:
    """``type: async``: 202 with ``Location`` pointing at the operation."""
    url = f"/1.0/operations/{op['id']}"
    body = AsyncResponse(operation=url, metadata=op).model_dump()
    return web.Response(
        body=dumps(body).encode(), status=202, content_type=JSON, headers={"Location": url}
    )


def error(status: int, message: str) -> web.Response:
    """``type: error`` with ``error_code`` equal to the HTTP status."""
    body = ErrorResponse(error_code=status, error=message).model_dump()
    return web.Response(body=dumps(body).encode(), status=status, content_type=JSON)
